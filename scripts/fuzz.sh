#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each. A target that
# fails with only "context deadline exceeded" and wrote no failing input is
# Go's fuzz-coordinator race at the -fuzztime deadline (go.dev/issue/75804,
# fixed in Go 1.27, not in 1.26.x): it is run again, at most twice more. A
# real finding always writes "Failing input written to" first and fails at
# once.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-1s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
    for try in 1 2 3; do
      echo "fuzz $pkg $t ($FUZZTIME, try $try)"
      if $GO test -run='^$' -fuzz="^$t\$" -fuzztime="$FUZZTIME" -fuzzminimizetime="$FUZZMINIMIZETIME" "$pkg" 2>&1 | tee "$log"; then
        break
      fi
      if ! grep -q 'context deadline exceeded' "$log" || grep -q 'Failing input written to' "$log" || [ "$try" = 3 ]; then
        exit 1
      fi
      echo "fuzz $pkg $t: only the coordinator's deadline race (go.dev/issue/75804), no failing input; running it again"
    done
  done
done
