#!/usr/bin/env bash
# spec/fuzz/run.sh NAME SECONDS BUILD_DIR [CORPUS_DIR]: runs the harness
# BUILD_DIR/fuzz/fuzz_NAME for SECONDS over its seeds (spec/fuzz/seeds/NAME
# and, when built, the rpcx vectors' BUILD_DIR/fuzz/vseeds/NAME), growing
# CORPUS_DIR; without one, a temporary directory removed at the end, so the
# tree stays clean. A finding (crash, leak, UB, timeout, out of memory) is
# written to BUILD_DIR/fuzz/findings/NAME/ and fails the run. Prints one
# summary line: executions, corpus size, findings.
set -uo pipefail
name=$1 secs=$2 build=$3 corpus=${4:-}
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$build/fuzz/fuzz_$name
findings=$build/fuzz/findings/$name
tmp=
if [ -z "$corpus" ]; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/moonrpc-fuzz-$name.XXXXXX")
  corpus=$tmp
fi
mkdir -p "$corpus" "$findings"
start=$findings/.start # findings of earlier runs are not counted again
touch "$start"
seeds=()
for d in "$src/spec/fuzz/seeds/$name" "$build/fuzz/vseeds/$name"; do
  [ -d "$d" ] && seeds+=("$d")
done
log=$findings/last.log
# New inputs go to the first directory only (the corpus); the seed
# directories are read. -timeout: one input taking 10 s is a hang.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$findings/" \
    "$corpus" "${seeds[@]}" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
size=$(find "$corpus" -type f | wc -l)
found=$(find "$findings" -type f -newer "$start" ! -name last.log | wc -l)
printf 'fuzz_%-10s executions %s, corpus %s inputs, findings %s%s\n' \
  "$name" "${execs:-?}" "$size" "$found" "$([ $rc -ne 0 ] && echo " (exit $rc, see $log)")"
[ -n "$tmp" ] && rm -rf "$tmp"
if [ $rc -ne 0 ]; then tail -60 "$log" >&2; fi
exit $rc
