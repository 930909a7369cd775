#!/bin/sh
# expect_failure.sh LIMIT_S PATTERN CMD...: passes when CMD fails (non-zero exit) before
# LIMIT_S seconds and its output contains PATTERN; a hang (killed by timeout) fails.
limit=$1; pattern=$2; shift 2
log=$(mktemp)
start=$(date +%s)
# -k: mpirun can ignore SIGTERM while tearing a job down; SIGKILL it 5 s later.
timeout -k 5 "$limit" "$@" >"$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$log"
echo "expect_failure: exit status $rc after ${elapsed}s (limit ${limit}s)"
if [ "$rc" -eq 0 ]; then echo "expect_failure: FAIL: the job succeeded"; exit 1; fi
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "expect_failure: FAIL: the job hung until the limit"; exit 1; fi
if ! grep -q "$pattern" "$log"; then echo "expect_failure: FAIL: no '$pattern' in the output"; exit 1; fi
rm -f "$log"
echo "expect_failure: PASS"
