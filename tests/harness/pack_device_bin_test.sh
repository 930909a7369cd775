#!/usr/bin/env bash
# scripts/pack_device_bin, what scripts/device_build uses to stage the GPU session's
# binaries: run on the normal build's binaries (fast gzip level), the tarball holds exactly
# bin/{seqscale,kernels_tests,layers_tests,comm_tests,harness_tests}, the size is printed, and the
# size logic fails (exit 1, no tarball left behind) over the carry limit; a missing binary
# fails too.
#   pack_device_bin_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src="${1:?usage: pack_device_bin_test.sh SOURCE_DIR BUILD_DIR}"
build="${2:?usage: pack_device_bin_test.sh SOURCE_DIR BUILD_DIR}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pack="$src/scripts/pack_device_bin"
export SEQSCALE_PACK_GZIP_LEVEL=1  # the size logic, not the compression, is under test

# The real build's binaries. The normal build has sm_80 and sm_90 and MPI, about twice the
# device flavour (sm_90 only), so the 64 MiB carry limit is scripts/device_build's check on
# the device flavour; here the contents and the printed size are under test.
SEQSCALE_CARRY_LIMIT_BYTES=$((512 * 1024 * 1024)) "$pack" "$build" "$tmp/bin.tar.gz" 2> "$tmp/err"
rc=$?
cat "$tmp/err"
[ $rc = 0 ] || fail "packing $build exited $rc"
grep -q 'MiB packed' "$tmp/err" || fail "the packed size is not printed"
[ "$(tar -tzf "$tmp/bin.tar.gz" | grep -v '/$' | sort | tr '\n' ' ')" = \
  "bin/comm_tests bin/harness_tests bin/kernels_tests bin/layers_tests bin/seqscale " ] || fail "unexpected tarball contents"

# Over the limit: exit 1 and no tarball (small fake binaries, a limit below their size).
mkdir -p "$tmp/flat"
for n in seqscale kernels_tests layers_tests comm_tests harness_tests; do
  head -c 200000 /dev/urandom > "$tmp/flat/$n"
  chmod +x "$tmp/flat/$n"
done
SEQSCALE_CARRY_LIMIT_BYTES=100000 "$pack" "$tmp/flat" "$tmp/over.tar.gz" 2> "$tmp/err"
rc=$?
cat "$tmp/err"
[ $rc = 1 ] || fail "over the limit: exit $rc, not 1"
grep -q 'FAIL: .* over the carry limit' "$tmp/err" || fail "over the limit: no FAIL line"
[ ! -e "$tmp/over.tar.gz" ] || fail "over the limit: the tarball was left behind"
SEQSCALE_CARRY_LIMIT_BYTES=2000000 "$pack" "$tmp/flat" "$tmp/under.tar.gz" 2> /dev/null ||
  fail "under the limit (flat folder): exit $?"

# A missing binary.
rm "$tmp/flat/harness_tests"
"$pack" "$tmp/flat" "$tmp/missing.tar.gz" 2> "$tmp/err"
rc=$?
{ [ $rc = 1 ] && grep -q "no executable 'harness_tests'" "$tmp/err"; } || fail "a missing binary: exit $rc"
echo "PASS"
