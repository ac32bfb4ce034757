#!/usr/bin/env bash
# make run: a local Prometheus (remote-write receiver) on 127.0.0.1:9090 as
# long-term storage, and the gateway on its built-in config (the same as
# examples/gateway.yaml) on 127.0.0.1:9003 (public) and :9004 (internal).
set -euo pipefail
bin=${1:-bin/telegate}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v prometheus >/dev/null 2>&1 || "$here/scripts/install-test-deps.sh"

data="$here/data/prometheus"
mkdir -p "$data"
cat >"$data/prometheus.yml" <<'YAML'
global: {scrape_interval: 15s}
YAML
prometheus --config.file="$data/prometheus.yml" --storage.tsdb.path="$data" \
  --web.listen-address=127.0.0.1:9090 --web.enable-remote-write-receiver \
  >"$data/prometheus.log" 2>&1 &
prom=$!
trap 'kill $prom 2>/dev/null; wait $prom 2>/dev/null' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:9090/-/ready >/dev/null 2>&1 && break; sleep 0.2; done

token=$(printf '{"authorization_token":"dev-token","cluster_id":"my-cluster"}' | base64 -w0)
cat <<MSG

  Downstream Prometheus : http://127.0.0.1:9090   (log: data/prometheus/prometheus.log)
  Gateway (public)      : http://127.0.0.1:9003
  Gateway (internal)    : http://127.0.0.1:9004/metrics

  Push with Prometheus remote write: add to any prometheus.yml
    remote_write:
      - url: http://127.0.0.1:9003/api/v1/receive
        authorization: {credentials: $token}

  or as a telemeter client:  curl -XPOST -H 'Authorization: Bearer dev-token' 'http://127.0.0.1:9003/authorize?id=my-cluster'
  Query what arrived:        curl -s 'http://127.0.0.1:9090/api/v1/query?query=up{_id="my-cluster"}'

MSG
"$here/$bin" gateway
