#!/usr/bin/env bash
# Client footprint (docs/capacity.md): one Prometheus on 127.0.0.1:19490
# scraping its own /metrics COPIES times, the telegate gateway as the upload
# sink (embedded store, upload_interval 1s), and telegate-client and (if
# TMC names a binary) telemeter-client federating the same selectors every
# 2s for DURATION seconds, side by side. Prints each client's CPU seconds
# (utime+stime) and VmHWM/VmRSS at the end, and what each uploaded.
#   make build && TMC=/path/to/telemeter-client COPIES=10 scripts/client-footprint.sh
set -euo pipefail
TG=${TG:-bin/telegate}
TGC=${TGC:-bin/telegate-client}
TMC=${TMC:-} # a telemeter-client binary; empty: telegate-client alone
DURATION=${DURATION:-40}
MATCH=${MATCH:-'{job="prometheus"}'}
d=$(mktemp -d /tmp/client-footprint.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ready() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "timeout $1" >&2; exit 1; }
COPIES=${COPIES:-1} # scrape Prometheus' own /metrics COPIES times (label copy=N): COPIES x ~350 series
{ echo 'global: {scrape_interval: 1s}'; echo 'scrape_configs:'; echo '- job_name: prometheus'; echo '  static_configs:'
  for i in $(seq "$COPIES"); do echo "  - {targets: [127.0.0.1:19490], labels: {copy: \"$i\"}}"; done; } >"$d/prometheus.yml"
prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/prom" --web.listen-address=127.0.0.1:19490 >"$d/prom.log" 2>&1 &
pids+=($!)
cat >"$d/allowlist.yaml" <<'Y'
matches:
- '{job="prometheus"}'
Y
cat >"$d/tokens.yaml" <<'Y'
tokens:
  - token: dev-token
    clusters: ["*"]
Y
cat >"$d/gateway.yaml" <<Y
web: {listen_address: 127.0.0.1:19403, internal_listen_address: 127.0.0.1:19404}
authn: {cluster_id_label: _id, tokens_file: $d/tokens.yaml}
allowlist: {file: $d/allowlist.yaml}
limits: {upload_interval: 1s}
storage: {path: $d/tsdb, wal_fsync: false}
Y
"$TG" gateway --config.file="$d/gateway.yaml" >"$d/gw.log" 2>&1 &
pids+=($!)
ready http://127.0.0.1:19404/-/ready
ready http://127.0.0.1:19490/-/ready
sleep 3 # a few self-scrapes
"$TGC" --from=http://127.0.0.1:19490 --to=http://127.0.0.1:19403 --id=cluster-telegate --to-token=dev-token \
  --match="$MATCH" --interval=2s --limit-bytes=4MiB --listen=127.0.0.1:19402 >"$d/tgc.log" 2>&1 &
tgc=$!; pids+=($tgc)
if [ -n "$TMC" ]; then
  "$TMC" --from=http://127.0.0.1:19490 --to=http://127.0.0.1:19403 --id=cluster-telemeter --to-token=dev-token \
    --match="$MATCH" --interval=2s --limit-bytes=4194304 --listen=127.0.0.1:19412 >"$d/tmc.log" 2>&1 &
  tmc=$!; pids+=($tmc)
fi
sleep "$DURATION"
hz=$(getconf CLK_TCK)
clients=("telegate-client $tgc 19402"); [ -z "$TMC" ] || clients+=("telemeter-client $tmc 19412")
for x in "${clients[@]}"; do
  set -- $x
  read -r ut st < <(awk '{print $14, $15}' /proc/$2/stat)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$2/status); rss=$(awk '/VmRSS/ {print $2}' /proc/$2/status)
  printf '%-17s cpu %.2fs  VmHWM %d KiB  VmRSS %d KiB\n' "$1" "$(echo "($ut+$st)/$hz" | bc -l)" "$hwm" "$rss"
  curl -fs http://127.0.0.1:$3/metrics > "$d/$1.metrics" || true
done
echo "series per federate: $(curl -fsG http://127.0.0.1:19490/federate --data-urlencode "match[]=$MATCH" | grep -vc '^#')"
echo "telegate-client:  uploads $(grep -E '^telegate_client_upload_attempts_total\{result="success"\}' "$d/telegate-client.metrics" | awk '{print $2}'), samples sent $(grep '^telegate_client_samples_sent_total' "$d/telegate-client.metrics" | awk '{print $2}'), last payload $(grep '^telegate_client_payload_bytes' "$d/telegate-client.metrics" | awk '{print $2}') B"
[ -z "$TMC" ] || echo "telemeter-client: uploads $(grep -E '^metricsclient_request_send\{client="federate_to",status_code="200"\}' "$d/telemeter-client.metrics" | awk '{print $2}'), federates $(grep '^federate_requests_total' "$d/telemeter-client.metrics" | awk '{print $2}'), last federate samples $(grep '^federate_samples' "$d/telemeter-client.metrics" | awk '{print $2}')"
grep -hs 'level=\(warn\|error\)' "$d/tgc.log" "$d/tmc.log" | sort | uniq -c | sort -rn | head -5 || true
echo "dir: $d"
