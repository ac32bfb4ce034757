#!/usr/bin/env bash
# make compare PEER=telemeter-server TELEMETER_SERVER=/path/to/telemeter-server:
# telegate's gateway and OpenShift's telemeter-server side by side on
# /upload, on this machine, in one run, with the same payload, the same
# load and the same downstream, and each one's samples per CPU-second of
# its own process (issue #15: "/upload at saturation: at least 15x
# telemeter-server's"). Same structure and output as scripts/compare.sh
# (telegate against vmagent on remote write).
#
#   - a sink: `telegate load --sink-only`, a remote-write receiver that only
#     decodes (its own process: its CPU is not counted for anyone);
#   - an authorizer stub (AUTHORIZER=tollbooth, the default): a small
#     python3 HTTP server playing the upstream both call on /authorize
#     (tollbooth's protocol, telemeter's pkg/authorize/tollbooth: POST
#     {"authorization_token":T,"cluster_id":ID}, Content-Type
#     application/json; 200 {"account_id":...} for the pull secret
#     "pull-secret", 401 otherwise). Its own process too. telemeter-server
#     calls it on every /authorize; telegate caches its answers (cache_ttl
#     10m), as both do in production. AUTHORIZER=none: no upstream,
#     telemeter-server without --authorize (it then accepts any pull
#     secret) and telegate with a static tokens file;
#   - bin/telegate gateway: that authorizer, the load allowlist (`telegate
#     load --print-allowlist`, half the names), instance and pod dropped,
#     limits.upload_interval 0 (closed loop: a cluster uploads again at
#     once) and limits.failed_auth off (its per-source bound of 4 authorizer
#     calls in flight would refuse the senders' first /authorize calls, all
#     from 127.0.0.1), forwarding to the sink;
#   - telemeter-server: --authorize at the stub, --whitelist-file with the
#     same selectors ({__name__="..."}, one a line), --elide-label=instance
#     --elide-label=pod, --ratelimit=0s (its per-cluster upload limit off,
#     like upload_interval 0), --forward-url to the sink, an ephemeral
#     signing key (no --shared-key), its default log level (it logs a line
#     per /upload at info: that is its production cost). No memcached: it
#     only caches the authorizer calls of its v2 /metrics/v1/receive, never
#     /authorize or /upload;
#   - then, one after the other, the same `telegate load --protocol upload
#     --id-label=_id` run against each (the payload of docs/capacity.md:
#     1000 series per upload, 10 labels incl. instance and pod, plus _id=the
#     cluster's ID as telemeter-client stamps it, which telemeter-server
#     requires; /authorize once per cluster per run, then snappy-framed
#     delimited MetricFamily bodies), the CPU read from each one's
#     process_cpu_seconds_total, and the forwarded samples counted at the
#     sink: each must have forwarded exactly half the samples.
#
# Building telemeter-server (not needed by make test; CI never fetches it):
#
#   git clone https://github.com/openshift/telemeter && cd telemeter
#   CGO_ENABLED=0 go build -mod=vendor -tags slicelabels -o /tmp/telemeter-server ./cmd/telemeter-server
#
# (the repository vendors its modules, so no module proxy is needed;
# -tags slicelabels as its Makefile builds it). Checked with commit
# 22ba1701 (2026-07-01).
#
# Modes (MODE): saturate (default here: the issue's figure) keeps
# CONCURRENCY requests in flight (default 8: closed loop, each sender sends
# its next upload when the previous one is answered, the CLUSTERS clusters
# taking turns); rate sends RATE uploads per second from a fleet of RATE*10
# clusters; serial is one sender, one request at a time. Each `telegate
# load` run authorizes each of its clusters once (its first turn), so in
# the closed-loop modes CLUSTERS (default 100, where compare.sh's remote
# write uses 1000) keeps /authorize a small share of the requests, as in a
# real fleet (one /authorize per token lifetime, 24h, against an upload
# every 4m30s): with 1000 clusters a 20s run of telemeter-server (about 90
# uploads/s here) authorizes before about two uploads in three.
#
# Environment: TELEMETER_SERVER (the binary; default telemeter-server on
# PATH), TELEGATE (default bin/telegate), MODE, CONCURRENCY, CLUSTERS,
# RATE (default 100), DURATION (of each measured run, default 30s), ROUNDS (default 2:
# telegate, telemeter, telemeter, telegate; the figures are the sums over
# the rounds), WARMUP (an unmeasured run of each first, default 5s; 0s to
# skip), SETTLE (wait after the last answer before reading the CPU,
# default 3s), ORDER (of the first round, default "telegate telemeter"),
# AUTHORIZER (tollbooth or none), PROFILE=FILE (the gateway runs with
# --web.enable-pprof and FILE gets a CPU profile of it over its first
# measured round; pprof's own CPU then counts in that round),
# PEER_PROFILE=FILE (the same of telemeter-server, whose internal listener
# always serves /debug/pprof), COMPARE_PORT
# (first of 6 loopback ports, default 19290), KEEP=1 keeps the temporary
# directory (configs, logs, JSON reports).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
telegate=${TELEGATE:-$here/bin/telegate}
telemeter=${TELEMETER_SERVER:-$(command -v telemeter-server || true)}
mode=${MODE:-saturate}
concurrency=${CONCURRENCY:-8}
clusters=${CLUSTERS:-100}
rate=${RATE:-100}
duration=${DURATION:-30s}
rounds=${ROUNDS:-2}
warmup=${WARMUP:-5s}
settle=${SETTLE:-3s}
order=${ORDER:-telegate telemeter}
port=${COMPARE_PORT:-19290}
profile=${PROFILE:-}
peer_profile=${PEER_PROFILE:-}
authorizer=${AUTHORIZER:-tollbooth}
token=pull-secret

case $mode in rate | saturate | serial) ;; *) echo "MODE must be rate, saturate or serial, got '$mode'" >&2; exit 2 ;; esac
case $authorizer in tollbooth | none) ;; *) echo "AUTHORIZER must be tollbooth or none, got '$authorizer'" >&2; exit 2 ;; esac
[[ $concurrency =~ ^[1-9][0-9]*$ ]] || { echo "CONCURRENCY must be a whole number of senders, got '$concurrency'" >&2; exit 2; }
[[ $clusters =~ ^[1-9][0-9]*$ ]] || { echo "CLUSTERS must be a whole number, got '$clusters'" >&2; exit 2; }
[[ $rate =~ ^[1-9][0-9]*$ ]] || { echo "RATE must be a whole number of requests per second, got '$rate'" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number, got '$rounds'" >&2; exit 2; }
[[ -x $telegate ]] || { echo "$telegate missing: run make build (or make compare PEER=telemeter-server)" >&2; exit 2; }
[[ -n $telemeter && -x $telemeter ]] || {
  echo "telemeter-server missing: set TELEMETER_SERVER=/path/to/telemeter-server (how to build it: $0's header)" >&2; exit 2; }
[[ $("$telegate" load --help 2>&1) == *--id-label* ]] || { echo "$telegate has no 'load --id-label': rebuild it (make build)" >&2; exit 2; }
if [[ $authorizer == tollbooth ]] && ! command -v python3 >/dev/null 2>&1; then
  echo "AUTHORIZER=tollbooth needs python3 (or AUTHORIZER=none)" >&2; exit 2
fi
if ! command -v jq >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
  else
    echo "compare-upload.sh needs jq (apt-get install jq)" >&2; exit 2
  fi
fi

sink_addr=127.0.0.1:$port
gw_addr=127.0.0.1:$((port + 1))
gw_internal=127.0.0.1:$((port + 2))
tm_addr=127.0.0.1:$((port + 3))
tm_internal=127.0.0.1:$((port + 4))
stub_addr=127.0.0.1:$((port + 5))
for a in "$sink_addr" "$gw_addr" "$gw_internal" "$tm_addr" "$tm_internal" "$stub_addr"; do
  if curl -s -o /dev/null --max-time 1 "http://$a/"; then
    echo "$a is already in use (set COMPARE_PORT)" >&2; exit 2
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/telegate-compare-upload.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${KEEP:-} == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # wait_ready URL PID LOG
  for _ in $(seq 150); do
    curl -fs -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited:" >&2; tail -20 "$tmp/$3" >&2; KEEP=1; return 1; }
    sleep 0.2
  done
  echo "timed out waiting for $1 (logs in $tmp)" >&2; KEEP=1; return 1
}

# metric NAME URL: the value of an unlabelled sample, as an integer.
metric() { curl -fs "$2" | awk -v n="$1" '$1 == n { printf "%.0f\n", $2; found = 1 } END { if (!found) print "NaN" }'; }

# The allowlist, and the same selectors one a line for telemeter-server.
"$telegate" load --print-allowlist >"$tmp/allowlist.yaml"
grep -o "{__name__=\"[^\"]*\"}" "$tmp/allowlist.yaml" >"$tmp/whitelist.txt"
[[ $(wc -l <"$tmp/whitelist.txt") -gt 0 ]] || { echo "no selectors in the load allowlist" >&2; exit 1; }

# The tollbooth stub: the upstream authorizer of both.
cat >"$tmp/tollbooth.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = sys.argv[2]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code, body):
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        self.answer(200, {"ok": True})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.answer(400, {"name": "InvalidBody", "reason": "not JSON"})
        if req.get("authorization_token") != TOKEN or not req.get("cluster_id"):
            return self.answer(401, {"name": "NotAuthorized", "reason": "unknown token"})
        self.answer(200, {"cluster_id": req["cluster_id"], "authorization_token": TOKEN,
                          "account_id": "acct-" + req["cluster_id"]})

    def log_message(self, *args):
        pass

host, port = sys.argv[1].rsplit(":", 1)
ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
PY

if [[ $authorizer == tollbooth ]]; then
  authn_yaml="authn: {tokens_file: \"\", authorizer: {url: \"http://$stub_addr/\"}}"
  tm_auth=(--authorize="http://$stub_addr/")
else
  printf 'tokens:\n  - token: %s\n    clusters: ["*"]\n' "$token" >"$tmp/tokens.yaml"
  authn_yaml="authn: {tokens_file: $tmp/tokens.yaml}"
  tm_auth=()
fi
cat >"$tmp/gateway.yaml" <<YAML
web: {listen_address: $gw_addr, internal_listen_address: $gw_internal}
$authn_yaml
allowlist: {file: $tmp/allowlist.yaml}
relabel: {drop_labels: [instance, pod]}
limits:
  upload_interval: 0s
  failed_auth: {per_minute: 0, max_concurrent_per_source: 0}
forward:
  url: http://$sink_addr/api/v1/write
  spool: {bucket: {type: FILESYSTEM, config: {directory: $tmp/spool}}}
YAML

cd "$tmp"
"$telegate" load --sink-only --sink.listen-address="$sink_addr" >"$tmp/sink.log" 2>&1 &
pids+=($!)
wait_ready "http://$sink_addr/metrics" "${pids[-1]}" sink.log
if [[ $authorizer == tollbooth ]]; then
  python3 "$tmp/tollbooth.py" "$stub_addr" "$token" >"$tmp/tollbooth.log" 2>&1 &
  pids+=($!)
  wait_ready "http://$stub_addr/" "${pids[-1]}" tollbooth.log
fi
gw_flags=()
if [[ -n $profile ]]; then gw_flags=(--web.enable-pprof); fi
"$telegate" gateway --config.file="$tmp/gateway.yaml" "${gw_flags[@]}" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
wait_ready "http://$gw_internal/-/ready" "${pids[-1]}" gateway.log
"$telemeter" --listen="$tm_addr" --listen-internal="$tm_internal" "${tm_auth[@]}" \
  --forward-url="http://$sink_addr/api/v1/receive" --whitelist-file="$tmp/whitelist.txt" \
  --elide-label=instance --elide-label=pod --ratelimit=0s >"$tmp/telemeter.log" 2>&1 &
pids+=($!)
wait_ready "http://$tm_internal/healthz/ready" "${pids[-1]}" telemeter.log

declare -A target metrics version
target[telegate]=http://$gw_addr;  metrics[telegate]=http://$gw_internal/metrics
target[telemeter]=http://$tm_addr; metrics[telemeter]=http://$tm_internal/metrics
version[telegate]=$("$telegate" --version 2>&1 | head -1)
version[telemeter]=$(curl -fs "${metrics[telemeter]}" | grep -m1 '^go_info' || true)

# rate: clusters upload every 10s, RATE*10 clusters make RATE uploads per
# second. saturate and serial: a closed loop over CLUSTERS clusters.
common=(load --protocol=upload --id-label=_id --token="$token" --output=json)
case $mode in
  rate)
    load_args=("${common[@]}" --clusters=$((rate * 10)) --interval=10s --speedup=1)
    what="$rate uploads/s" ;;
  saturate)
    load_args=("${common[@]}" --clusters="$clusters" --senders="$concurrency")
    what="saturated ($concurrency uploads in flight, $clusters clusters)" ;;
  serial)
    load_args=("${common[@]}" --clusters="$clusters" --senders=1)
    what="one upload at a time, $clusters clusters" ;;
esac

# wait_sink BEFORE WANT: wait until the sink holds WANT more samples than
# BEFORE (or stops moving for 5s); print what it got.
wait_sink() {
  local got last=-1 still=0
  for _ in $(seq 60); do
    got=$(( $(metric telegate_load_sink_samples_total "http://$sink_addr/metrics") - $1 ))
    if (( got == $2 )); then break; fi
    if (( got == last )); then still=$((still + 1)); (( still >= 5 )) && break; else still=0; fi
    last=$got
    sleep 1
  done
  echo "$got"
}

run() { # run NAME DURATION [ROUND]: measured when ROUND is given
  local name=$1 before breq out=$tmp/$1.warmup.json
  before=$(metric telegate_load_sink_samples_total "http://$sink_addr/metrics")
  breq=$(metric telegate_load_sink_requests_total "http://$sink_addr/metrics")
  local murl="" extra=()
  if [[ -n ${3:-} ]]; then murl=${metrics[$name]}; extra=(--settle="$settle"); out=$tmp/$name.round$3.json; fi
  local prof_pid="" pfile="" pbase=""
  if [[ -n $profile && $name == telegate ]]; then pfile=$profile; pbase=http://$gw_internal; fi
  if [[ -n $peer_profile && $name == telemeter ]]; then pfile=$peer_profile; pbase=http://$tm_internal; fi
  if [[ -n $pfile && ${3:-} == 1 ]]; then
    local secs=${2%s}
    [[ $secs =~ ^[0-9]+$ ]] || secs=10
    curl -fs -o "$pfile" "$pbase/debug/pprof/profile?seconds=$(( secs > 2 ? secs - 2 : 1 ))" &
    prof_pid=$!
  fi
  "$telegate" "${load_args[@]}" --target="${target[$name]}" \
    --metrics-url="$murl" --duration="$2" "${extra[@]}" >"$out.tmp" 2>"$tmp/$name.load.log" ||
    { echo "load against $name failed:" >&2; cat "$tmp/$name.load.log" >&2; KEEP=1; return 1; }
  if [[ -n $prof_pid ]]; then wait "$prof_pid" || echo "PROFILE: could not read $name's CPU profile" >&2; fi
  local sent forwarded freq
  sent=$(jq -r .samples_accepted "$out.tmp")
  forwarded=$(wait_sink "$before" $((sent / 2)))
  freq=$(( $(metric telegate_load_sink_requests_total "http://$sink_addr/metrics") - breq ))
  jq --argjson fwd "$forwarded" --argjson freq "$freq" '. + {forwarded: $fwd, forward_requests: $freq}' "$out.tmp" >"$out"
  rm -f "$out.tmp"
}

reversed=$(echo "$order" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n") }')
echo "telegate vs telemeter-server on /upload, MODE=$mode: $what x 1000 series for $duration each, one after the other, $rounds round(s), AUTHORIZER=$authorizer (scratch dir $tmp)"
echo "  ${version[telegate]}"
echo "  telemeter-server $telemeter (${version[telemeter]:-unknown Go})"
echo "  load average at the start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
if [[ $warmup != 0s && $warmup != 0 ]]; then
  for name in $order; do
    echo "warm-up: $name for $warmup" >&2
    run "$name" "$warmup"
  done
fi
for r in $(seq "$rounds"); do
  seq_names=$order
  if (( r % 2 == 0 )); then seq_names=$reversed; fi # ABBA: drift hits both alike
  for name in $seq_names; do
    echo "round $r: $name for $duration" >&2
    run "$name" "$duration" "$r"
  done
done

# Sum the rounds: rates and samples per CPU-second from the totals, p50
# the mean of the rounds', p99 and peak RSS the worst round's.
for name in telegate telemeter; do
  files=()
  for r in $(seq "$rounds"); do files+=("$tmp/$name.round$r.json"); done
  jq -s '{
    writes: (map(.writes) | add),
    accepted_writes: (map(.accepted_writes) | add),
    authorizes: (map(.authorizes) | add),
    achieved_rate: ((map(.writes) | add) / (map(.elapsed_seconds) | add)),
    latency_seconds: {p50: (map(.latency_seconds.p50) | add / length), p99: (map(.latency_seconds.p99) | max)},
    samples_accepted: (map(.samples_accepted) | add),
    forwarded: (map(.forwarded) | add),
    forward_requests: (map(.forward_requests) | add),
    target: {
      cpu_seconds: (map(.target.cpu_seconds // 0) | add),
      peak_rss_bytes: (map(.target.peak_rss_bytes // 0) | max),
      error: (map(.target.error // empty) | first // "")
    },
    rounds: map({samples_accepted, forwarded, writes, accepted_writes, codes,
      achieved_rate, p99: .latency_seconds.p99,
      samples_per_cpu_second: (.target.samples_per_cpu_second // 0)})
  } | .target.cpu_seconds_per_write = (if .accepted_writes > 0 then .target.cpu_seconds / .accepted_writes else 0 end)
    | .target.samples_per_cpu_second = (if .target.cpu_seconds > 0 then .samples_accepted / .target.cpu_seconds else 0 end)' \
    "${files[@]}" >"$tmp/$name.result.json"
done

f() { jq -r "$2" "$tmp/$1.result.json"; }
row() { printf '%-28s %18s %18s\n' "$1" "$2" "$3"; }
rowf() { # rowf LABEL PRINTF-FORMAT JQ-EXPR
  row "$1" "$(printf "$2" "$(f telegate "$3")")" "$(printf "$2" "$(f telemeter "$3")")"
}
echo
row "" telegate telemeter-server
row "uploads (2xx)" "$(f telegate '"\(.writes) (\(.accepted_writes))"')" "$(f telemeter '"\(.writes) (\(.accepted_writes))"')"
rowf "authorizes" %d .authorizes
rowf "achieved rate /s" %.2f .achieved_rate
if (( rounds > 1 )); then
  rowf "latency p50 ms (mean)" %.1f '.latency_seconds.p50*1000'
  rowf "latency p99 ms (worst)" %.1f '.latency_seconds.p99*1000'
else
  rowf "latency p50 ms" %.1f '.latency_seconds.p50*1000'
  rowf "latency p99 ms" %.1f '.latency_seconds.p99*1000'
fi
rowf "samples received" %d .samples_accepted
rowf "samples forwarded to sink" %d .forwarded
rowf "requests to sink" %d .forward_requests
rowf "process CPU seconds" %.2f .target.cpu_seconds
rowf "CPU ms per upload" %.3f '.target.cpu_seconds_per_write*1000'
rowf "samples per CPU-second" %.0f .target.samples_per_cpu_second
rowf "peak RSS MiB" %.1f '.target.peak_rss_bytes/1048576'
echo
# ratio A B: A/B to two places (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
for r in $(seq "$rounds"); do
  i=$((r - 1))
  t=$(f telegate ".rounds[$i].samples_per_cpu_second"); v=$(f telemeter ".rounds[$i].samples_per_cpu_second")
  tr=$(f telegate ".rounds[$i].achieved_rate"); vr=$(f telemeter ".rounds[$i].achieved_rate")
  tp=$(f telegate ".rounds[$i].p99"); vp=$(f telemeter ".rounds[$i].p99")
  awk -v r="$r" -v t="$t" -v v="$v" -v tr="$tr" -v vr="$vr" -v tp="$tp" -v vp="$vp" -v q="$(ratio "$t" "$v")" 'BEGIN {
    printf "round %d: samples per CPU-second telegate %.0f, telemeter-server %.0f, ratio %s; uploads/s %.1f, %.1f; p99 ms %.1f, %.1f\n",
      r, t, v, q, tr, vr, tp * 1000, vp * 1000 }'
done
echo "ratio telegate/telemeter-server, samples per CPU-second: $(ratio "$(f telegate .target.samples_per_cpu_second)" "$(f telemeter .target.samples_per_cpu_second)")"
echo "ratio telegate/telemeter-server, uploads per second:     $(ratio "$(f telegate .achieved_rate)" "$(f telemeter .achieved_rate)")"
echo "ratio telegate/telemeter-server, CPU ms per upload:      $(ratio "$(f telegate .target.cpu_seconds_per_write)" "$(f telemeter .target.cpu_seconds_per_write)")"
echo "ratio telegate/telemeter-server, p99 latency (worst):    $(ratio "$(f telegate .latency_seconds.p99)" "$(f telemeter .latency_seconds.p99)")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"

status=0
for name in telegate telemeter; do
  for r in $(seq 0 $((rounds - 1))); do
    sent=$(f "$name" ".rounds[$r].samples_accepted")
    fwd=$(f "$name" ".rounds[$r].forwarded")
    if (( sent == 0 || fwd * 2 != sent )); then
      echo "FAIL: $name round $((r + 1)) forwarded $fwd of $sent samples, want exactly half ($((sent / 2)))" >&2; status=1
    fi
    if [[ $(f "$name" ".rounds[$r] | .writes == .accepted_writes and ([.codes | to_entries[] | select((.key | startswith(\"authorize \")) and .key != \"authorize 200\")] | length == 0)") != true ]]; then
      echo "FAIL: $name round $((r + 1)) answered $(f "$name" ".rounds[$r].codes | tostring")" >&2; status=1
    fi
  done
  if [[ $(f "$name" .target.error) != "" ]]; then
    echo "FAIL: $name metrics: $(f "$name" .target.error)" >&2; status=1
  fi
done
if (( status == 0 )); then
  echo "check: in every round each forwarded exactly half the samples it received (the allowlisted names) to the sink"
fi
exit $status
