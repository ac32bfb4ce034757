#!/usr/bin/env bash
# pprof-shares.sh BINARY PROFILE: the share of a CPU profile's samples
# whose stack holds a frame matching each category's regex (go tool pprof
# -focus), for docs/capacity.md's "At saturation". Categories overlap (a
# futex wake-up inside the forward client counts in both).
#
#   PROFILE=/tmp/gw.pprof MODE=saturate make compare
#   scripts/pprof-shares.sh bin/telegate /tmp/gw.pprof
set -euo pipefail
bin=$1 prof=$2
total=$(go tool pprof -top -nodecount=1 "$bin" "$prof" 2>/dev/null | sed -n 's/.*Total samples = \([^ ]*\).*/\1/p')
echo "total samples: $total"
while IFS='|' read -r name re; do
  line=$(go tool pprof -top -nodecount=100000 -nodefraction=0 -edgefraction=0 -focus="$re" "$bin" "$prof" 2>/dev/null |
    grep -m1 'Showing nodes accounting' || true)
  pct=$(echo "$line" | sed -n 's/.*, \([0-9.]*%\) of.*/\1/p')
  printf '%-44s %s\n' "$name" "${pct:-0%}"
done <<'LIST'
syscalls (all: socket, futex, epoll, sleeps)|linux\.Syscall6|syscall\.RawSyscall|^runtime\.futex$|^runtime\.usleep$|^runtime\.osyield$
  socket read and write|^syscall\.(read|write)$
  futex (thread sleep and wake-up)|^runtime\.futex$
  epoll wait (netpoll)|linux\.EpollWait|^runtime\.netpoll$
scheduler (runtime.schedule)|^runtime\.schedule$
net/http server: reading requests|net/http\.\(\*conn\)\.readRequest|net/http\.\(\*connReader\)
net/http server: writing answers|net/http\.\(\*response\)\.finishRequest
net/http client (forward)|net/http\.\(\*persistConn\)|net/http\.\(\*Transport\)|net/http\.\(\*Client\)
GC and malloc|^runtime\.gcBgMarkWorker$|^runtime\.gcAssistAlloc$|^runtime\.mallocgc$
request decoding (gateway/decode)|telegate/gateway/decode\.
  snappy decode|s2Decode|DecodeBlock
relabel|telegate/relabel\.
privacy guard|telegate/privacy\.
forward encoding (incl. snappy)|telegate/forward\.\(\*Buffers\)\.Encode
  snappy encode|encodeSnappyBlock|s2\.Encode
LIST
