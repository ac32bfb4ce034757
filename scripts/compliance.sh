#!/usr/bin/env bash
# Runs the public remote-write receiver compliance suite
# (github.com/prometheus/compliance, remotewrite/receiver) against telegate
# in single-binary mode with an allow-everything allowlist. Not part of
# `make test` (the suite is not on the module proxy's path of this repo):
#
#   git clone https://github.com/prometheus/compliance /tmp/compliance
#   COMPLIANCE_DIR=/tmp/compliance scripts/compliance.sh [go test flags, e.g. -run TestX]
#
# It prints the failing leaf tests, a pass/fail count, and the leaf tests'
# answers by status and error: the suite passes any 400 (it only checks that
# no more was written than sent), so a pass may be a refusal.
#
# The suite symbolizes labels in Go map order, breaking the 2.0 spec's
# "label names sorted" rule, which telegate refuses with a 400 (that the
# suite counts as a pass). SORT_LABELS=1 runs a copy of the suite with
# scripts/compliance-sort-labels.patch applied, so that its requests are
# valid and the verdicts say what telegate does with them.
#
# FORWARD=prometheus.WriteRequest or FORWARD=io.prometheus.write.v2.Request
# puts a gateway forwarding with that message in front of the embedded one
# (gateway.log, forwarder.log).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=${COMPLIANCE_DIR:?set COMPLIANCE_DIR to a checkout of github.com/prometheus/compliance}/remotewrite/receiver
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
token=$(printf '{"authorization_token":"compliance","cluster_id":"compliance"}' | base64 -w0)

(cd "$root" && go build -o "$work/telegate" ./cmd/telegate)

# gateway DIR TAIL starts a gateway in $work/DIR whose config ends with
# TAIL (its storage or forward section) and sets pub to its receive address.
gateway() {
  local dir=$work/$1 internal=127.0.0.1:$(port)
  pub=127.0.0.1:$(port)
  mkdir -p "$dir"
  cat >"$dir/allowlist.yaml" <<'YAML'
matches:
# owners: (@telegate/compliance)
# The compliance suite sends any metric name.
- '{__name__=~".+"}'
YAML
  cat >"$dir/tokens.yaml" <<'YAML'
tokens:
- token: compliance
  clusters: ["*"]
YAML
  cat >"$dir/gateway.yaml" <<YAML
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
$2
YAML
  (cd "$dir" && exec ../telegate gateway --config.file=gateway.yaml --log.level=warn >"$work/$1.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://$internal/-/ready" >/dev/null && return; sleep 0.1; done
}

gateway gateway "$(printf 'storage:\n  path: ./data')"
if [ -n "${FORWARD:-}" ]; then
  # The suite talks to a gateway that forwards to the one above.
  gateway forwarder "$(printf 'forward:\n  url: http://%s/api/v1/receive\n  protobuf_message: %s\n  authorization:\n    credentials: %s' "$pub" "$FORWARD" "$token")"
fi

cat >"$work/config.yml" <<YAML
remote_write:
  - name: telegate
    url: http://$pub/api/v1/receive
    authorization:
      credentials: $token
YAML
if [ -n "${SORT_LABELS:-}" ]; then
  cp -r "$suite" "$work/suite"
  patch -s -p3 -d "$work/suite" <"$root/scripts/compliance-sort-labels.patch"
  suite=$work/suite
fi
cd "$suite"
set +e
PROMETHEUS_RW2_COMPLIANCE_CONFIG_FILE="$work/config.yml" go test -count=1 -v "$@" . >"$work/suite.log" 2>&1
set -e
grep -E '^\s*--- (PASS|FAIL)' "$work/suite.log" | sed 's/ (.*//' | sort -u >"$work/verdicts"
leaf=$(grep -E -- '--- (PASS|FAIL): .*/telegate$' "$work/verdicts" || true)
echo "$leaf" | grep FAIL || true
printf 'leaf tests: %s pass, %s fail\n' "$(echo "$leaf" | grep -c PASS)" "$(echo "$leaf" | grep -c FAIL)"
# Answers per leaf test: status, and for an error its message with the
# series-specific parts cut.
python3 - "$work/suite.log" <<'PY'
import collections, re, sys
test, tally = None, collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r'=== RUN\s+(\S+/telegate)$', line)
    if m:
        test = m.group(1)
        continue
    m = re.search(r'Response code from "telegate": (\d+)', line)
    if test and m:
        code = m.group(1)
        if code.startswith('2'):
            tally[code] += 1
            test = None
        continue
    m = re.search(r'Response body from "telegate": "(.*)"$', line)
    if test and m:
        err = re.sub(r'\\+"', '"', m.group(1))
        err = re.search(r'"error":"(.*?)(?:: \{|","reason")', err)
        err = re.sub(r'\[\d+\]|offset \d+|\d+ of \d+|"[^"]*"', '…', err.group(1) if err else '?')
        tally[code + ' ' + err[:110]] += 1
        test = None
print('leaf test answers:')
for k, n in sorted(tally.items(), key=lambda kv: (kv[0][:3], -kv[1], kv[0])):
    print('%5d  %s' % (n, k))
PY
