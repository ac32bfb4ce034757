#!/usr/bin/env bash
# Runs the public remote-write receiver compliance suite
# (github.com/prometheus/compliance, remotewrite/receiver) against telegate
# in single-binary mode with an allow-everything allowlist. Not part of
# `make test` (the suite is not on the module proxy's path of this repo):
#
#   git clone https://github.com/prometheus/compliance /tmp/compliance
#   COMPLIANCE_DIR=/tmp/compliance scripts/compliance.sh [go test flags, e.g. -run TestX]
#
# It prints the suite's verdict per leaf test and a pass/fail count.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=${COMPLIANCE_DIR:?set COMPLIANCE_DIR to a checkout of github.com/prometheus/compliance}/remotewrite/receiver
work=$(mktemp -d)
trap 'kill $gw 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pub=127.0.0.1:$(port) internal=127.0.0.1:$(port)

(cd "$root" && go build -o "$work/telegate" ./cmd/telegate)
cat >"$work/allowlist.yaml" <<'YAML'
matches:
# owners: (@telegate/compliance)
# The compliance suite sends any metric name.
- '{__name__=~".+"}'
YAML
cat >"$work/tokens.yaml" <<'YAML'
tokens:
- token: compliance
  clusters: ["*"]
YAML
cat >"$work/gateway.yaml" <<YAML
web:
  listen_address: $pub
  internal_listen_address: $internal
authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
relabel:
  # The suite's series often differ only by instance, which the default
  # drop_labels strips (a deliberate telemeter policy: they would merge).
  drop_labels: []
  max_sample_age: 24h
  max_future_skew: 1h
storage:
  path: ./data
YAML
(cd "$work" && ./telegate gateway --config.file=gateway.yaml --log.level=warn >"$work/gateway.log" 2>&1) &
gw=$!
for _ in $(seq 100); do curl -fs "http://$internal/-/ready" >/dev/null && break; sleep 0.1; done

token=$(printf '{"authorization_token":"compliance","cluster_id":"compliance"}' | base64 -w0)
cat >"$work/config.yml" <<YAML
remote_write:
  - name: telegate
    url: http://$pub/api/v1/receive
    authorization:
      credentials: $token
YAML
cd "$suite"
set +e
PROMETHEUS_RW2_COMPLIANCE_CONFIG_FILE="$work/config.yml" go test -count=1 -v "$@" . >"$work/suite.log" 2>&1
set -e
grep -E '^\s*--- (PASS|FAIL)' "$work/suite.log" | sed 's/ (.*//' | sort -u >"$work/verdicts"
leaf=$(grep -E -- '--- (PASS|FAIL): .*/telegate$' "$work/verdicts" || true)
echo "$leaf" | grep FAIL || true
printf 'leaf tests: %s pass, %s fail\n' "$(echo "$leaf" | grep -c PASS)" "$(echo "$leaf" | grep -c FAIL)"
