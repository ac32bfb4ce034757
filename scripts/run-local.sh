#!/usr/bin/env bash
# make run: a complete local system on 127.0.0.1, in single-binary mode.
#   - telegate gateway on its built-in config (= examples/gateway.yaml):
#     public API on :9003; /metrics, health and the Prometheus query API
#     (/api/v1/query, ...) on :9004. forward.url is empty, so it stores
#     what it accepts in its embedded TSDB (data/tsdb). Loopback only, so
#     POST /-/reload (--web.enable-lifecycle) and /debug/pprof
#     (--web.enable-pprof) are on; production leaves both off.
#   - a Prometheus on :9091 playing a cluster: it scrapes itself and
#     remote-writes through the gateway as cluster "my-cluster".
#   - a telegate client federating that Prometheus and uploading (the
#     telemeter protocol) as cluster "my-client-cluster", every 4m30s.
# Installs the Debian prometheus package if it is missing. Ctrl-C stops all.
set -euo pipefail
bin=${1:-bin/telegate}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v prometheus >/dev/null 2>&1 || "$here/scripts/install-test-deps.sh"

# Each child in its own process group (job control): Ctrl-C reaches only
# this script, which stops them in order.
set -m
pids=()
# stop_all stops the senders first (the client, then the demo Prometheus,
# whose remote-write queue would otherwise retry the stopped gateway for a
# minute), the gateway last, each given a moment to exit cleanly and
# killed if it has not: everything is gone within five seconds of Ctrl-C.
stop_all() {
  trap - EXIT INT TERM
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}" 15; done
}
stop() { # pid, tenths of a second to wait before SIGKILL
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

wait_ready() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "timed out waiting for $1" >&2; return 1; }

mkdir -p "$here/data"
"$here/$bin" gateway --storage.path="$here/data/tsdb" --web.enable-lifecycle --web.enable-pprof &
pids+=($!)
wait_ready http://127.0.0.1:9004/-/ready

token=$(printf '{"authorization_token":"dev-token","cluster_id":"my-cluster"}' | base64 | tr -d '\n')
cluster="$here/data/cluster"; mkdir -p "$cluster"
cat >"$cluster/prometheus.yml" <<YAML
global: {scrape_interval: 5s}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["127.0.0.1:9091"]}]
remote_write:
  - url: http://127.0.0.1:9003/api/v1/receive
    authorization: {credentials: "$token"}
YAML
prometheus --config.file="$cluster/prometheus.yml" --storage.tsdb.path="$cluster" \
  --web.listen-address=127.0.0.1:9091 >"$cluster/prometheus.log" 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:9091/-/ready
# Let the demo cluster scrape itself once, so the client's first
# snapshot (taken within 30s) is not empty.
for _ in $(seq 100); do
  curl -fs http://127.0.0.1:9091/api/v1/query --data-urlencode 'query=up{job="prometheus"}' 2>/dev/null | grep -q '"value"' && break
  sleep 0.2
done

"$here/$bin" client --from=http://127.0.0.1:9091 --to=http://127.0.0.1:9003 --id=my-client-cluster \
  --to-token=dev-token --match-from-gateway --listen=127.0.0.1:9002 --staging-dir="$here/data/client" \
  >"$here/data/client.log" 2>&1 &
pids+=($!)

cat <<MSG

  telegate is up (single-binary mode: no other server).
    gateway public API   http://127.0.0.1:9003  (/authorize, /upload, /api/v1/receive)
    gateway internal     http://127.0.0.1:9004  (/metrics, health, and the Prometheus query API:
                                                 point Grafana's Prometheus data source here;
                                                 POST /-/reload, /debug/pprof, /debug/limits)
    storage              data/tsdb (embedded Prometheus TSDB, 15d retention)
    demo cluster         http://127.0.0.1:9091  (Prometheus remote-writing as "my-cluster")
    telegate client      http://127.0.0.1:9002  (uploading as "my-client-cluster"; log in data/client.log)

  In ~30s the gateway holds the demo cluster's allowlisted series, stamped
  with _id and without instance:
    curl -s http://127.0.0.1:9004/api/v1/query -G --data-urlencode 'query=up{_id="my-cluster"}'

  A telemeter client's first step:
    curl -s -XPOST -H 'Authorization: Bearer dev-token' 'http://127.0.0.1:9003/authorize?id=my-cluster'

  Ctrl-C stops everything.
MSG
wait "${pids[0]}"
