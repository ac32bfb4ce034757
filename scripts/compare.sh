#!/usr/bin/env bash
# make compare: telegate's gateway and VictoriaMetrics' vmagent side by side,
# on this machine, in one run, with the same payload, the same request rate
# and the same downstream, and each one's samples per CPU-second of its own
# process.
#
#   - a sink: `telegate load --sink-only`, a remote-write receiver that only
#     decodes (its own process: its CPU is not counted for anyone);
#   - bin/telegate gateway: static token for any cluster, the load
#     allowlist (`telegate load --print-allowlist`, half the names),
#     instance and pod dropped, forwarding to the sink;
#   - bin/vmagent: no auth, -remoteWrite.relabelConfig keeping the same
#     names (action: keep on __name__) and dropping instance|pod
#     (action: labeldrop), -remoteWrite.url to the sink (Prometheus remote
#     write protocol: -remoteWrite.forcePromProto);
#   - then, one after the other, the same `telegate load --protocol
#     remote-write` run against each (the payload of docs/capacity.md: 1000
#     series per request, 10 labels incl. instance and pod), the CPU read from
#     each one's process_cpu_seconds_total, and the forwarded samples counted
#     at the sink: each must have forwarded exactly half the samples.
#
# Modes (MODE): rate (default) sends RATE requests per second from a
# fleet of RATE*10 clusters; saturate keeps CONCURRENCY requests in flight
# (default 8: closed loop, each sender sends its next request when the
# previous one is answered, so each gateway runs as fast as it can);
# serial is one sender, one request at a time. The figures to compare are
# samples per CPU-second of each one's own process and p99 latency; in the
# closed-loop modes the achieved rate (and its ratio) shows throughput too.
#
# Environment: MODE, CONCURRENCY, RATE (requests/s, default 100), DURATION (of each measured
# run, default 30s), ROUNDS (default 2: telegate, vmagent, vmagent,
# telegate; the figures are the sums over the rounds), WARMUP (an unmeasured
# run of each first, default 5s; 0s to skip), SETTLE (wait after the last
# answer before reading the CPU, so vmagent's last batches count, default
# 3s), ORDER (of the first round, default "telegate vmagent"),
# PROFILE=FILE (the gateway runs with --web.enable-pprof and FILE gets a
# CPU profile of it over its first measured round, for go tool pprof;
# pprof's own CPU then counts in that round), PIN=CPULIST (both gateways
# run under taskset -c CPULIST, the load generator and the sink do not:
# PIN=0 against PIN=0,1 measures how the gateways scale from one core to
# two; Go sizes GOMAXPROCS to the CPUs it may use), COMPARE_PORT (first of 4 loopback ports, default 19190), KEEP=1 keeps the
# temporary directory (configs, logs, JSON reports).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
telegate=${TELEGATE:-$here/bin/telegate}
vmagent=${VMAGENT:-$here/bin/vmagent}
mode=${MODE:-rate}
concurrency=${CONCURRENCY:-8}
rate=${RATE:-100}
duration=${DURATION:-30s}
rounds=${ROUNDS:-2}
warmup=${WARMUP:-5s}
settle=${SETTLE:-3s}
order=${ORDER:-telegate vmagent}
port=${COMPARE_PORT:-19190}
profile=${PROFILE:-}
pin=()
if [[ -n ${PIN:-} ]]; then
  command -v taskset >/dev/null || { echo "PIN needs taskset (util-linux)" >&2; exit 2; }
  [[ $PIN =~ ^[0-9][0-9,-]*$ ]] || { echo "PIN must be a CPU list for taskset -c, got '$PIN'" >&2; exit 2; }
  pin=(taskset -c "$PIN")
fi

case $mode in rate | saturate | serial) ;; *) echo "MODE must be rate, saturate or serial, got '$mode'" >&2; exit 2 ;; esac
[[ $concurrency =~ ^[1-9][0-9]*$ ]] || { echo "CONCURRENCY must be a whole number of senders, got '$concurrency'" >&2; exit 2; }
[[ $rate =~ ^[1-9][0-9]*$ ]] || { echo "RATE must be a whole number of requests per second, got '$rate'" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number, got '$rounds'" >&2; exit 2; }
for b in "$telegate" "$vmagent"; do
  [[ -x $b ]] || { echo "$b missing: run make build vmagent (or make compare)" >&2; exit 2; }
done
if ! command -v jq >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
  else
    echo "compare.sh needs jq (apt-get install jq)" >&2; exit 2
  fi
fi

sink_addr=127.0.0.1:$port
gw_addr=127.0.0.1:$((port + 1))
gw_internal=127.0.0.1:$((port + 2))
vm_addr=127.0.0.1:$((port + 3))
for a in "$sink_addr" "$gw_addr" "$gw_internal" "$vm_addr"; do
  if curl -s -o /dev/null --max-time 1 "http://$a/"; then
    echo "$a is already in use (set COMPARE_PORT)" >&2; exit 2
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/telegate-compare.XXXXXX")
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

# The allowlist and the equivalent vmagent relabelling.
"$telegate" load --print-allowlist >"$tmp/allowlist.yaml"
names=$(grep -o '__name__="[^"]*"' "$tmp/allowlist.yaml" | sed 's/__name__="\(.*\)"/\1/' | paste -sd'|' -)
cat >"$tmp/relabel.yaml" <<YAML
- action: keep
  source_labels: [__name__]
  regex: '$names'
- action: labeldrop
  regex: 'instance|pod'
YAML
printf 'tokens:\n  - token: dev-token\n    clusters: ["*"]\n' >"$tmp/tokens.yaml"
cat >"$tmp/gateway.yaml" <<YAML
web: {listen_address: $gw_addr, internal_listen_address: $gw_internal}
authn: {tokens_file: $tmp/tokens.yaml}
allowlist: {file: $tmp/allowlist.yaml}
relabel: {drop_labels: [instance, pod]}
forward:
  url: http://$sink_addr/api/v1/write
  spool: {bucket: {type: FILESYSTEM, config: {directory: $tmp/spool}}}
YAML

cd "$tmp"
"$telegate" load --sink-only --sink.listen-address="$sink_addr" >"$tmp/sink.log" 2>&1 &
pids+=($!)
gw_flags=()
if [[ -n $profile ]]; then gw_flags=(--web.enable-pprof); fi
"${pin[@]}" "$telegate" gateway --config.file="$tmp/gateway.yaml" "${gw_flags[@]}" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
"${pin[@]}" "$vmagent" -httpListenAddr="$vm_addr" -remoteWrite.url="http://$sink_addr/api/v1/write" \
  -remoteWrite.forcePromProto -remoteWrite.relabelConfig="$tmp/relabel.yaml" \
  -remoteWrite.tmpDataPath="$tmp/vmagent-data" >"$tmp/vmagent.log" 2>&1 &
pids+=($!)
wait_ready "http://$sink_addr/metrics" "${pids[0]}" sink.log
wait_ready "http://$gw_internal/-/ready" "${pids[1]}" gateway.log
wait_ready "http://$vm_addr/health" "${pids[2]}" vmagent.log

declare -A target path metrics version
target[telegate]=http://$gw_addr;  path[telegate]=/api/v1/receive; metrics[telegate]=http://$gw_internal/metrics
target[vmagent]=http://$vm_addr;   path[vmagent]=/api/v1/write;    metrics[vmagent]=http://$vm_addr/metrics
version[telegate]=$("$telegate" --version 2>&1 | head -1)
version[vmagent]=$("$vmagent" -version 2>&1 | grep -m1 '^vmagent' || true)

# rate: clusters send every 10s, RATE*10 clusters make RATE requests per
# second. saturate and serial: a closed loop over 1000 clusters.
case $mode in
  rate)
    load_args=(load --protocol=remote-write --clusters=$((rate * 10)) --interval=10s --speedup=1 --output=json)
    what="$rate requests/s" ;;
  saturate)
    load_args=(load --protocol=remote-write --clusters=1000 --senders="$concurrency" --output=json)
    what="saturated ($concurrency requests in flight)" ;;
  serial)
    load_args=(load --protocol=remote-write --clusters=1000 --senders=1 --output=json)
    what="one request at a time" ;;
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
  local prof_pid=""
  if [[ -n $profile && $name == telegate && ${3:-} == 1 ]]; then
    local secs=${2%s}
    [[ $secs =~ ^[0-9]+$ ]] || secs=10
    curl -fs -o "$profile" "http://$gw_internal/debug/pprof/profile?seconds=$(( secs > 2 ? secs - 2 : 1 ))" &
    prof_pid=$!
  fi
  "$telegate" "${load_args[@]}" --target="${target[$name]}" --path="${path[$name]}" \
    --metrics-url="$murl" --duration="$2" "${extra[@]}" >"$out.tmp" 2>"$tmp/$name.load.log" ||
    { echo "load against $name failed:" >&2; cat "$tmp/$name.load.log" >&2; KEEP=1; return 1; }
  if [[ -n $prof_pid ]]; then wait "$prof_pid" || echo "PROFILE: could not read the gateway's CPU profile" >&2; fi
  local sent forwarded freq
  sent=$(jq -r .samples_accepted "$out.tmp")
  forwarded=$(wait_sink "$before" $((sent / 2)))
  freq=$(( $(metric telegate_load_sink_requests_total "http://$sink_addr/metrics") - breq ))
  jq --argjson fwd "$forwarded" --argjson freq "$freq" '. + {forwarded: $fwd, forward_requests: $freq}' "$out.tmp" >"$out"
  rm -f "$out.tmp"
}

reversed=$(echo "$order" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n") }')
echo "telegate vs vmagent, MODE=$mode: $what x 1000 series for $duration each, one after the other, $rounds round(s) (scratch dir $tmp)"
echo "  ${version[telegate]}"
echo "  ${version[vmagent]:-vmagent (unknown version)}"
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
for name in telegate vmagent; do
  files=()
  for r in $(seq "$rounds"); do files+=("$tmp/$name.round$r.json"); done
  jq -s '{
    writes: (map(.writes) | add),
    accepted_writes: (map(.accepted_writes) | add),
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
  row "$1" "$(printf "$2" "$(f telegate "$3")")" "$(printf "$2" "$(f vmagent "$3")")"
}
echo
row "" telegate vmagent
row "requests (2xx)" "$(f telegate '"\(.writes) (\(.accepted_writes))"')" "$(f vmagent '"\(.writes) (\(.accepted_writes))"')"
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
rowf "CPU ms per request" %.3f '.target.cpu_seconds_per_write*1000'
rowf "samples per CPU-second" %.0f .target.samples_per_cpu_second
rowf "peak RSS MiB" %.1f '.target.peak_rss_bytes/1048576'
echo
# ratio A B: A/B to two places (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
for r in $(seq "$rounds"); do
  i=$((r - 1))
  t=$(f telegate ".rounds[$i].samples_per_cpu_second"); v=$(f vmagent ".rounds[$i].samples_per_cpu_second")
  tr=$(f telegate ".rounds[$i].achieved_rate"); vr=$(f vmagent ".rounds[$i].achieved_rate")
  tp=$(f telegate ".rounds[$i].p99"); vp=$(f vmagent ".rounds[$i].p99")
  awk -v r="$r" -v t="$t" -v v="$v" -v tr="$tr" -v vr="$vr" -v tp="$tp" -v vp="$vp" -v q="$(ratio "$t" "$v")" 'BEGIN {
    printf "round %d: samples per CPU-second telegate %.0f, vmagent %.0f, ratio %s; requests/s %.1f, %.1f; p99 ms %.1f, %.1f\n",
      r, t, v, q, tr, vr, tp * 1000, vp * 1000 }'
done
echo "ratio telegate/vmagent, samples per CPU-second: $(ratio "$(f telegate .target.samples_per_cpu_second)" "$(f vmagent .target.samples_per_cpu_second)")"
echo "ratio telegate/vmagent, requests per second:    $(ratio "$(f telegate .achieved_rate)" "$(f vmagent .achieved_rate)")"
echo "ratio telegate/vmagent, CPU ms per request:     $(ratio "$(f telegate .target.cpu_seconds_per_write)" "$(f vmagent .target.cpu_seconds_per_write)")"
echo "ratio telegate/vmagent, p99 latency (worst):    $(ratio "$(f telegate .latency_seconds.p99)" "$(f vmagent .latency_seconds.p99)")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"

status=0
for name in telegate vmagent; do
  for r in $(seq 0 $((rounds - 1))); do
    sent=$(f "$name" ".rounds[$r].samples_accepted")
    fwd=$(f "$name" ".rounds[$r].forwarded")
    if (( sent == 0 || fwd * 2 != sent )); then
      echo "FAIL: $name round $((r + 1)) forwarded $fwd of $sent samples, want exactly half ($((sent / 2)))" >&2; status=1
    fi
    if [[ $(f "$name" ".rounds[$r] | .writes == .accepted_writes") != true ]]; then
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
