#!/usr/bin/env bash
# SEQSCALE_GPU_DRY_RUN=1 scripts/gpu_session.sh on this machine (no GPU), with the normal
# build's binaries: every stage runs, the GPU ones report "no device" in one line (and check
# their filters select points), the model's predictions are made, and the tarball that a
# device call returns is in $OUT, all within 60 s.
#   gpu_session_dry_run_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src="${1:?usage: gpu_session_dry_run_test.sh SOURCE_DIR BUILD_DIR}"
build="${2:?usage: gpu_session_dry_run_test.sh SOURCE_DIR BUILD_DIR}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
stages=(facts tests memcheck checks ceilings evoformer peers predictions)

t0=$(date +%s)
SEQSCALE_GPU_DRY_RUN=1 SEQSCALE_BIN_DIR="$build" SEQSCALE_GPU_WORK="$tmp/work" OUT="$tmp/out" \
  "$src/scripts/gpu_session.sh" > "$tmp/console" 2>&1
rc=$?
took=$(($(date +%s) - t0))
cat "$tmp/console"
[ $rc = 0 ] || fail "dry run exited $rc"
[ $took -le 60 ] || fail "dry run took ${took}s, over 60 s"

tgz="$tmp/out/gpu_session.tar.gz"
[ -s "$tgz" ] || fail "no $tgz"
[ -s "$tmp/out/gpu_session.log" ] || fail "no gpu_session.log in \$OUT"
n=$(find "$tmp/out" -type f | wc -l)
[ "$n" -le 8 ] || fail "$n files in \$OUT: the device tool returns at most 8"
tar -tzf "$tgz" > "$tmp/list" || fail "$tgz is not a gzip'ed tar"
for s in "${stages[@]}"; do
  grep -qx "./stages/$s.dry" "$tmp/list" || fail "the tarball lists no stage '$s' (stages/$s.dry)"
  [ "$(grep -c "^$s: " "$tmp/console")" = 1 ] || fail "stage '$s' did not print exactly one line"
done
for s in tests memcheck checks ceilings evoformer peers; do
  grep -q "^$s: no device (dry run)" "$tmp/console" || fail "stage '$s' did not report 'no device'"
done
for f in ./session.log ./facts/info.json ./results/cpu-dry-run/model/evoformer/results.json \
         ./results/cpu-dry-run/model/ceilings/results.json; do
  grep -qxF "$f" "$tmp/list" || fail "the tarball lacks $f"
done
# The evoformer filters select the goal points first: 20 fwd, 16 simt/tc, 16 block, 20 fwd+bwd.
grep -q '^evoformer: .* evoformer 20+16+16+20+[0-9]* points' "$tmp/console" ||
  fail "the evoformer stage's filters no longer select 20+16+16+20 goal points"
grep -q '^ceilings: .* ceilings 7 points' "$tmp/console" || fail "the ceilings filter no longer selects 7 points"
echo "PASS: dry run in ${took}s, $(wc -l < "$tmp/list") entries in the tarball"
