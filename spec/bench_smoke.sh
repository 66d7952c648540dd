#!/usr/bin/env bash
# spec/bench_smoke.sh ROOT BUILD: moonrpc bench works against both echo
# services (C handler, Lua handler) and checks every reply: with several
# workers, a list of sizes up to 1 MiB, --json and --server-pid; and its
# usage errors exit 2. A smoke test of correctness, not a measurement: no
# figure is asserted, only that the figures are there.
set -euo pipefail
root=$1 build=$2
export MOONRPC_BUILD=$build
export LUA_PATH="$root/lua/?.lua;;" LUA_CPATH="$build/lib/?.so;;"
bench="$root/scripts/moonrpc bench"
pids=()
logs=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -f "${logs[@]}"
}
trap cleanup EXIT

# start LOG ARGS...: runs `moonrpc echo ARGS` in the background and sets
# $addr to its address and $pid to its PID (the command execs the server, so
# it is the server's). Not called in a subshell, so $pids keeps the PID.
start() {
  local log=$1; shift
  "$root/scripts/moonrpc" echo "$@" --listen tcp@127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  pids+=($pid)
  addr=""
  for _ in $(seq 50); do
    addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$log")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

# check_json FILE COUNT [server]: FILE holds exactly COUNT lines, each a JSON
# object of a run with requests, a number for rps and mb_per_s, errors 0,
# and the client's CPU per call; with `server`, the server's too.
check_json() {
  lua5.4 - "$@" <<'LUA'
    local json = require "dkjson"
    local file, want, server = arg[1], tonumber(arg[2]), arg[3] == "server"
    local n = 0
    for line in io.lines(file) do
      n = n + 1
      local o, _, err = json.decode(line)
      assert(type(o) == "table", "line " .. n .. " is not a JSON object: " .. tostring(err))
      for _, k in ipairs { "rps", "mb_per_s", "requests", "size", "workers",
                           "client_user_us_per_call", "client_sys_us_per_call" } do
        assert(type(o[k]) == "number", "line " .. n .. ": " .. k .. " is not a number")
      end
      assert(o.errors == 0, "line " .. n .. ": errors " .. tostring(o.errors))
      assert(o.requests > 0 and o.latency_ms and o.latency_ms.p50, "line " .. n .. ": no figures")
      if server then
        assert(type(o.server_user_us_per_call) == "number" and type(o.server_sys_us_per_call) == "number",
               "line " .. n .. ": no server CPU per call")
      end
    end
    assert(n == want, "expected " .. want .. " JSON lines, got " .. n)
LUA
}

# usage ARGS...: the bench refuses ARGS with exit status 2.
usage() {
  local rc=0
  $bench "$@" >/dev/null 2>&1 || rc=$?
  if [ $rc -ne 2 ]; then echo "moonrpc bench $* exited $rc, not 2" >&2; return 1; fi
}

usage --workers 3 --conns 2 -c 10
usage --workers 0
usage --workers many
usage --size 1X
usage --size 64,,1KiB
usage --size 17MiB
usage --server-pid 0
usage --server-pid 1,x
usage --bogus
echo "bench usage errors: ok"

out=$(mktemp); logs+=("$out")
for kind in c lua; do
  log=$(mktemp); logs+=("$log")
  if [ $kind = lua ]; then start "$log" --lua; else start "$log"; fi
  for ser in msgpack json raw; do
    $bench --addr "$addr" -c 10 -n 2000 --size 64 --serialize $ser --json >"$out" 2>/dev/null
    check_json "$out" 1
  done
  # Two workers, one run per size; the table goes to stdout without --json.
  $bench --addr "$addr" -c 8 --conns 4 --workers 2 -n 200 --size 64,1KiB,64KiB,1MiB 2>/dev/null >"$out"
  [ "$(grep -cE '^ +(64|1KiB|64KiB|1MiB) +8 +4 +2 .* 0  ' "$out")" = 4 ] || { cat "$out" >&2; exit 1; }
  $bench --addr "$addr" -c 8 --conns 4 --workers 2 -n 200 --size 64,1KiB,64KiB,1MiB \
    --server-pid "$pid" --json >"$out" 2>/dev/null
  check_json "$out" 4 server
  $bench --addr "$addr" -c 100 --conns 4 --workers auto -n 5000 --size 2000 --json >"$out" 2>/dev/null
  check_json "$out" 1
  if [ $kind = lua ]; then
    # The soak's figures: the server's RSS and its Lua memory (Echo.Memory),
    # sampled every second, in the JSON and the table.
    $bench --addr "$addr" -c 10 --duration 1.5 --warmup 100 --server-pid "$pid" --lua-memory \
      --json >"$out" 2>/dev/null
    check_json "$out" 1 server
    lua5.4 -e '
      local o = require "dkjson".decode(io.read("a"))
      local r, l = assert(o.server_rss_kib, "no server_rss_kib"), assert(o.lua_memory_kib, "no lua_memory_kib")
      for _, k in ipairs { "first", "max", "last", "growth", "samples" } do assert(type(r[k]) == "number", k) end
      for _, k in ipairs { "before", "first", "max", "after", "growth" } do assert(type(l[k]) == "number", k) end
      assert(r.first > 0 and r.samples >= 2 and l.after > 0, "no samples")' <"$out"
    $bench --addr "$addr" -c 10 -n 2000 --server-pid "$pid" --lua-memory 2>/dev/null >"$out"
    grep -q "server rss KiB: first after warm-up" "$out" && grep -q "lua memory KiB: before" "$out" \
      || { cat "$out" >&2; exit 1; }
  fi
  echo "bench against the $kind echo handler: ok"
done
