#!/usr/bin/env bash
# spec/bench_smoke.sh ROOT BUILD: moonrpc bench works against both echo
# services (C handler, Lua handler) and checks every reply. A smoke test of
# correctness, not a measurement: no figure is asserted.
set -euo pipefail
root=$1 build=$2
export MOONRPC_BUILD=$build
export LUA_PATH="$root/lua/?.lua;;" LUA_CPATH="$build/lib/?.so;;"
pids=()
logs=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -f "${logs[@]}"
}
trap cleanup EXIT

# start LOG ARGS...: runs `moonrpc echo ARGS` in the background and sets
# $addr to its address. Not called in a subshell, so $pids keeps the PID.
start() {
  local log=$1; shift
  "$root/scripts/moonrpc" echo "$@" --listen tcp@127.0.0.1:0 >"$log" 2>&1 &
  pids+=($!)
  addr=""
  for _ in $(seq 50); do
    addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$log")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

for kind in c lua; do
  log=$(mktemp); logs+=("$log")
  if [ $kind = lua ]; then start "$log" --lua; else start "$log"; fi
  for ser in msgpack json raw; do
    "$root/scripts/moonrpc" bench --addr "$addr" -c 10 -n 2000 --size 64 --serialize $ser 2>/dev/null | tee /dev/stderr | grep -q "errors: 0 "
  done
  "$root/scripts/moonrpc" bench --addr "$addr" -c 100 --conns 4 -n 5000 --size 2000 2>/dev/null | grep -q "errors: 0 "
  echo "bench against the $kind echo handler: ok"
done
