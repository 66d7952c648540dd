#!/usr/bin/env bash
# run_examples.sh SERVER_BIN CLIENT_BIN: runs the C Arith client against the
# C Arith server, both on loopback.
#
# Starts the server on tcp@127.0.0.1:0, reads the address from its first
# line (`listening on tcp@127.0.0.1:PORT`, within 5 s), runs the client
# against it, then stops the server with SIGTERM and waits for it. Exits with
# the client's status, or 1 when the server did not start or did not exit 0
# after SIGTERM. The server is killed on any early exit.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SERVER_BIN CLIENT_BIN" >&2
  exit 2
fi
server_bin=$1
client_bin=$2
start_timeout=5
stop_timeout=10

server_pid=
fifo_dir=$(mktemp -d)
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$fifo_dir"
}
trap cleanup EXIT

# The server's stdout goes through a fifo so that its first line can be read
# with a timeout; the rest of its output is copied to ours by cat.
mkfifo "$fifo_dir/out"
"$server_bin" tcp@127.0.0.1:0 >"$fifo_dir/out" &
server_pid=$!
exec 3<"$fifo_dir/out"

line=
if ! IFS= read -r -t "$start_timeout" line <&3; then
  echo "run_examples: the server printed no address within ${start_timeout}s" >&2
  exit 1
fi
cat <&3 &
exec 3<&-
echo "server: $line"
if [[ $line != "listening on "* ]]; then
  echo "run_examples: unexpected first line from the server: $line" >&2
  exit 1
fi
address=${line#listening on }

client_status=0
"$client_bin" "$address" || client_status=$?

kill -TERM "$server_pid"
# wait returns the server's status; bound it so a hung shutdown fails.
server_status=0
for ((i = 0; i < stop_timeout * 10; i++)); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  echo "run_examples: the server did not exit within ${stop_timeout}s of SIGTERM" >&2
  exit 1
fi
wait "$server_pid" || server_status=$?
server_pid=
wait # the cat copying the server's output
if [[ $server_status -ne 0 ]]; then
  echo "run_examples: the server exited with status $server_status after SIGTERM" >&2
  exit 1
fi
echo "client exit status: $client_status"
exit "$client_status"
