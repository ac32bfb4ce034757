#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: a real Prometheus
# (remote-write receiver, /federate, promtool), redis-server (shared
# budgets across gateway replicas) and haproxy (the load balancer in front
# of the gateway replicas in the scale-out test) from the Debian packages.
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/sbin/redis-server ] || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts no service we rely on; tests run their own processes.
command -v prometheus >/dev/null
command -v redis-server >/dev/null || [ -x /usr/sbin/redis-server ]
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]
