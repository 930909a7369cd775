#!/usr/bin/env bash
# scripts/gpu_session.sh's device path, run here without a GPU: a stub nvidia-smi and a
# seqscale wrapper whose `info --json` reports an H200 (with a warning on stderr, L-12);
# every other verb is the real CLI, whose CUDA points then record "skipped".
#  1. a full call: every stage runs and is marked done, results land under
#     results/h200/, the literal commit is recorded, the tarball holds it all;
#  2. the returned tarball extracted into a fresh work folder (what `carry` does): a second
#     call skips every finished stage;
#  3. fail fast: no device (info says 0 devices) or a library ldd cannot find stops the call
#     after one line with exit 3, and still returns a tarball.
#   gpu_session_resume_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src="${1:?usage: gpu_session_resume_test.sh SOURCE_DIR BUILD_DIR}"
build="${2:?usage: gpu_session_resume_test.sh SOURCE_DIR BUILD_DIR}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
script="$src/scripts/gpu_session.sh"
real="$build/harness/cli/seqscale"
[ -x "$real" ] || fail "no $real"

mkdir -p "$tmp/path" "$tmp/bin" "$tmp/nodev"
printf '#!/bin/sh\necho "stub nvidia-smi $*"\n' > "$tmp/path/nvidia-smi"
device='"device_count": 1, "devices": [{"name": "NVIDIA H200"}]'
nodevice='"device_count": 0, "devices": [], "no_device_reason": "no CUDA device: stub"'
# shellcheck disable=SC2016  # the wrapper's own $1 and $@, written literally
wrapper() {  # DEVICE_JSON_FIELDS -> a seqscale whose `info --json` reports them
  printf '%s\n' '#!/usr/bin/env bash' \
    'if [ "${1:-}" = info ]; then' \
    '  echo "a warning on stderr" >&2' \
    "  echo '{\"cuda_driver\": \"13.0\", \"cuda_runtime\": \"13.0\", $1, \"nccl\": 22809}'" \
    '  exit 0' \
    'fi' \
    "exec '$real' \"\$@\""
}
wrapper "$device" > "$tmp/bin/seqscale"
wrapper "$nodevice" > "$tmp/nodev/seqscale"
chmod +x "$tmp/path/nvidia-smi" "$tmp/bin/seqscale" "$tmp/nodev/seqscale"
for t in kernels_tests layers_tests comm_tests harness_tests; do
  [ -x "$build/tests/$t" ] && ln -s "$build/tests/$t" "$tmp/bin/$t"
done
export PATH="$tmp/path:$PATH"
sha=0123456789abcdef0123456789abcdef01234567

# 1. A full call.
SEQSCALE_GIT_COMMIT=$sha SEQSCALE_BIN_DIR="$tmp/bin" SEQSCALE_GPU_WORK="$tmp/w1" OUT="$tmp/o1" \
  "$script" > "$tmp/c1" 2>&1
rc=$?
cat "$tmp/c1"
[ $rc = 0 ] || fail "first call exited $rc"
head -1 "$tmp/c1" | grep -q "^facts: NVIDIA H200 | .*commit $sha" ||
  fail "the first line does not name the device and the commit (stderr must stay out of the JSON)"
for s in tests memcheck checks ceilings evoformer peers predictions; do
  [ -f "$tmp/w1/stages/$s.done" ] || fail "stage $s not marked done"
done
tar -tzf "$tmp/o1/gpu_session.tar.gz" > "$tmp/list" || fail "no tarball after the first call"
for f in ./stages/evoformer.done ./results/h200/evoformer/results.json ./results/h200/checks/evoformer/results.json \
         ./results/h200/ceilings/results.json ./results/h200/model/evoformer/results.json ./facts/info.err; do
  grep -qxF "$f" "$tmp/list" || fail "the tarball lacks $f"
done
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["run"]["git_commit"] == sys.argv[2], d["run"]["git_commit"]
assert len(d["points"]) == 92, len(d["points"])
' "$tmp/w1/results/h200/evoformer/results.json" "$sha" || fail "results.json lacks the commit or points"

# 2. Carried back: extract the tarball into a fresh work folder; finished stages are skipped.
mkdir -p "$tmp/w2"
tar -C "$tmp/w2" -xzf "$tmp/o1/gpu_session.tar.gz" || fail "cannot extract the tarball"
SEQSCALE_GIT_COMMIT=$sha SEQSCALE_BIN_DIR="$tmp/bin" SEQSCALE_GPU_WORK="$tmp/w2" OUT="$tmp/o2" \
  "$script" > "$tmp/c2" 2>&1
rc=$?
cat "$tmp/c2"
[ $rc = 0 ] || fail "second call exited $rc"
[ "$(grep -c 'done in an earlier call' "$tmp/c2")" = 7 ] || fail "the second call did not skip the 7 finished stages"
[ "$(cat "$tmp/w2/calls")" = 2 ] || fail "the call counter did not carry over"

# Another commit does not resume that folder: it is set aside and the call starts afresh.
SEQSCALE_GIT_COMMIT=fedcba9876543210fedcba9876543210fedcba98 SEQSCALE_BIN_DIR="$tmp/bin" \
  SEQSCALE_GPU_WORK="$tmp/w2" OUT="$tmp/o2b" "$script" predictions > "$tmp/c2b" 2>&1
rc=$?
cat "$tmp/c2b"
[ $rc = 0 ] || fail "call with another commit exited $rc"
grep -q '^work folder was commit 0123456789ab.*set aside' "$tmp/c2b" || fail "another commit: the folder was not set aside"
[ -f "$tmp/w2.commit-0123456789ab/stages/evoformer.done" ] || fail "another commit: the old folder is not kept aside"
{ [ ! -e "$tmp/w2/stages/evoformer.done" ] && [ -f "$tmp/w2/stages/predictions.done" ]; } ||
  fail "another commit: the new folder is not fresh"

# 3. Fail fast, one line, exit 3, a tarball all the same.
SEQSCALE_BIN_DIR="$tmp/nodev" SEQSCALE_GPU_WORK="$tmp/w3" OUT="$tmp/o3" "$script" > "$tmp/c3" 2>&1
rc=$?
cat "$tmp/c3"
[ $rc = 3 ] || fail "no device: exit $rc, not 3"
{ [ "$(wc -l < "$tmp/c3")" = 1 ] && grep -q '^no device: ' "$tmp/c3"; } || fail "no device: not one line"
[ -s "$tmp/o3/gpu_session.tar.gz" ] || fail "no device: no tarball"
if command -v cc > /dev/null; then
  mkdir -p "$tmp/lib" "$tmp/missing"
  echo 'int seqscale_gone(void) { return 0; }' > "$tmp/lib/gone.c"
  echo 'int seqscale_gone(void); int main(void) { return seqscale_gone(); }' > "$tmp/lib/main.c"
  { cc -shared -fPIC -o "$tmp/lib/libseqscale_gone.so" "$tmp/lib/gone.c" &&
    cc -o "$tmp/missing/kernels_tests" "$tmp/lib/main.c" -L"$tmp/lib" -lseqscale_gone; } || fail "cc failed"
  rm "$tmp/lib/libseqscale_gone.so"
  ln -s "$tmp/bin/seqscale" "$tmp/missing/seqscale"
  SEQSCALE_BIN_DIR="$tmp/missing" SEQSCALE_GPU_WORK="$tmp/w4" OUT="$tmp/o4" "$script" > "$tmp/c4" 2>&1
  rc=$?
  cat "$tmp/c4"
  [ $rc = 3 ] || fail "missing library: exit $rc, not 3"
  { [ "$(wc -l < "$tmp/c4")" = 1 ] && grep -q '^missing libraries: kernels_tests: libseqscale_gone.so' "$tmp/c4"; } ||
    fail "missing library: not one line naming it"
fi
echo "PASS"
