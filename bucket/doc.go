// Package bucket opens the object store the durable spool lives on, from
// the configuration every Thanos component reads (--objstore.config: type,
// config, prefix): FILESYSTEM as Filesystem, a bucket on a local directory
// whose uploads are atomic and fsynced, and S3, GCS and AZURE through the
// thanos-io/objstore providers (config checked strictly, without
// contacting the store, before anything is opened).
//
// It is its own package so that forward, which only needs the
// objstore.Bucket interface, does not link the cloud SDKs: cmd/telegate
// opens the bucket and hands it to forward.OpenSpool, and config holds its
// Config. Nothing on the request path imports it
// (internal/depcheck checks that).
package bucket
