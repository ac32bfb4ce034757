#!/usr/bin/env bash
# make run: a complete local system on 127.0.0.1.
#   - Prometheus on :9090 with the remote-write receiver: the long-term store.
#   - telegate gateway on its built-in config (= examples/gateway.yaml):
#     public API on :9003, /metrics and health on :9004.
#   - a second Prometheus on :9091 playing a cluster: it scrapes itself and
#     remote-writes through the gateway as cluster "my-cluster".
# Installs the Debian prometheus package if it is missing. Ctrl-C stops all.
set -euo pipefail
bin=${1:-bin/telegate}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v prometheus >/dev/null 2>&1 || "$here/scripts/install-test-deps.sh"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_ready() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "timed out waiting for $1" >&2; return 1; }

store="$here/data/store"; mkdir -p "$store"
echo 'global: {scrape_interval: 15s}' >"$store/prometheus.yml"
prometheus --config.file="$store/prometheus.yml" --storage.tsdb.path="$store" \
  --web.listen-address=127.0.0.1:9090 --web.enable-remote-write-receiver \
  >"$store/prometheus.log" 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:9090/-/ready

"$here/$bin" gateway &
pids+=($!)
wait_ready http://127.0.0.1:9004/-/ready

token=$(printf '{"authorization_token":"dev-token","cluster_id":"my-cluster"}' | base64 | tr -d '\n')
cluster="$here/data/cluster"; mkdir -p "$cluster"
cat >"$cluster/prometheus.yml" <<YAML
global: {scrape_interval: 15s}
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

cat <<MSG

  telegate is up.
    gateway public API   http://127.0.0.1:9003  (/authorize, /upload, /api/v1/receive)
    gateway internal     http://127.0.0.1:9004/metrics
    long-term store      http://127.0.0.1:9090  (Prometheus; log in data/store/)
    demo cluster         http://127.0.0.1:9091  (Prometheus remote-writing as "my-cluster")

  In ~30s the store holds the demo cluster's allowlisted series, stamped
  with _id and without instance:
    curl -s http://127.0.0.1:9090/api/v1/query -G --data-urlencode 'query=up{_id="my-cluster"}'

  A telemeter client's first step:
    curl -s -XPOST -H 'Authorization: Bearer dev-token' 'http://127.0.0.1:9003/authorize?id=my-cluster'

  Ctrl-C stops everything.
MSG
wait "${pids[1]}"
