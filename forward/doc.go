// Package forward sends batches to long-term storage by Prometheus remote
// write 1.0 (Thanos Receive, or Prometheus with
// --web.enable-remote-write-receiver), or 2.0 when protobuf_message says
// io.prometheus.write.v2.Request.
//
// It owns three things:
//
//   - Encoding: AppendWriteRequest writes a prometheus.WriteRequest for a
//     slice of batch.Series (labels, samples, exemplars, native histograms
//     as their already-encoded Raw) without intermediate structs,
//     byte-identical to prompb's Marshal, and AppendMetadata its
//     MetricMetadata; Buffers.Encode adds snappy block compression (s2's
//     snappy-compatible encoder) into reused (pooled) buffers;
//     Buffers.EncodeSplitMetadata (EncodeSplit without metadata) keeps
//     each request under a size limit, splitting an oversized series by
//     its points and exemplars, the metadata in the first request.
//     AppendRequestV2 and Buffers.EncodeSplitV2 do the same for 2.0's
//     io.prometheus.write.v2.Request (a symbols table per request, each
//     series with its family's metadata); Buffers.EncodeSplitMessage picks
//     by protobuf_message.
//   - Sending: Sender.Send posts one compressed body with the headers the
//     spec requires plus configured ones, retries network errors, 5xx and
//     429 with jittered exponential backoff (or the downstream's
//     Retry-After) within the caller's deadline, and returns an *Error that
//     says whether the failure is recoverable, so the gateway can answer
//     503 or 400/413. For 2.0 it checks the X-Prometheus-Remote-Write-*-
//     Written answer against the body; a downstream that does not support
//     the message (415, or a 2xx without any Written header) is
//     ErrUnsupported, not retried. Where the configuration allows
//     (Config.HTTP1FastPath, on by default: http:// urls, or https:// with
//     enable_http2 false; no proxy, oauth2, ...) it sends with a
//     synchronous HTTP/1.1 client that writes the request and reads the
//     answer on the sending goroutine over kept-alive connections, under
//     prometheus/common's authorization, basic_auth, http_headers and TLS
//     file reloading; otherwise with prometheus/common's net/http client.
//   - Coalescing (group commit): Coalescer is a BodySender (and
//     BlockSender, taking the trusted snappy blocks of Buffers.EncodeBlocks,
//     and ProtoSender, taking uncompressed requests from
//     Buffers.EncodeSplitProto) that sends a body at once when no send is
//     in flight and coalesces the bodies queued behind one into a single
//     remote write 1.0 request (concatenated WriteRequests, their snappy
//     blocks joined, within MaxBytes and MaxRequests), every member getting the
//     shared outcome; a 4xx for a coalesced body sends each member again
//     alone. It sits below Durable, so spooling, backlogs and per-cluster
//     order stay per request. 2.0 passes through.
//   - Durability: Durable.Send tries the Sender within a deadline and, when
//     the downstream cannot take the body now, writes it to a Spool on a
//     thanos-io/objstore bucket (opened by package bucket; forward needs
//     only the objstore.Bucket interface, never a cloud SDK) and
//     returns nil, so a 2xx always means forwarded or durably spooled.
//     Spool.Replay drains it in the background: oldest first per cluster,
//     clusters in turn, delete only after a 2xx, dead/ for what the
//     downstream refuses for good; each body is sent as the message it was
//     encoded as. A refusal of samples as out of order (ErrOutOfOrder:
//     409 "out of order sample" / "out of bounds" / "too old sample",
//     what Thanos Receive answers when another gateway replica forwarded
//     newer samples of the series first) is counted apart and retried a
//     bounded number of times, its cluster waiting, before dead/; the
//     receivers' out-of-order window is what lets such samples in. Dead letters count against the spool's MaxBytes until
//     Replay's sweep deletes them after DeadRetention.
//   - Its self-metrics (telegate_forward_*, telegate_spool_*).
//
// Send takes an encoded body rather than series so a durable spool can
// store bodies and replay them through the same call.
package forward
