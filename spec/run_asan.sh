#!/bin/sh
# spec/run_asan.sh COMMAND...: runs a busted spec against the ASan/UBSan
# build. LeakSanitizer's own tracer now and then crashes at exit ("Tracer
# caught signal 11", a known LSan runtime fault, google/sanitizers#1353)
# after every test passed; only then is the spec run once more. Any other
# failure, and a leak report, fail as they are.
#
# The sanitizer runtimes (LD_PRELOAD) go to COMMAND only: this script's own
# helpers (mktemp, cat, grep) are not ours to check, and mktemp's small
# leak at exit used to print a stray "Aborted" into the log.
preload=${LD_PRELOAD:-}
unset LD_PRELOAD
out=$(mktemp)
LD_PRELOAD=$preload "$@" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -ne 0 ] && grep -q "Tracer caught signal" "$out" &&
   grep -q " 0 failures / 0 errors" "$out"; then
  echo "run_asan: LeakSanitizer's tracer crashed after the spec passed; running it once more"
  LD_PRELOAD=$preload "$@"
  rc=$?
fi
rm -f "$out"
exit "$rc"
