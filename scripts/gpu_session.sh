#!/usr/bin/env bash
# One device call of a GPU session (issue 7), run ON the lent H100/H200 from the repo root:
#   here:   scripts/device_build            (stages .device/bin)
#   device: run(command="SEQSCALE_GIT_COMMIT=<sha> bash scripts/gpu_session.sh", carry=[".device"])
# It finds the device's CUDA libraries, records the device, runs every test binary (GPU
# tests now run against the CPU references), compute-sanitizer memcheck on the kernel
# tests, the ceilings and kernel matrices, the training-step matrix and the measured
# longest sequences, then packs everything into $OUT/gpu_session.tar.gz.
set -uo pipefail
root="$(pwd)"
bin="$root/.device/bin"
# scripts/device_build packs the binaries (the carry limit): unpack them once here.
[ -d "$bin" ] || tar -C "$root/.device" -xzf "$root/.device/bin.tar.gz"
out="${OUT:-$root/out/gpu}"
work="$root/out/gpu_session"
mkdir -p "$work" "$out"
export SEQSCALE_ROOT="$root" SEQSCALE_BIN="$bin/seqscale"
# cuBLAS/NCCL/CUPTI are too big to carry: use the device's own (toolkit or PyTorch wheels).
libdirs=$(find / -xdev \( -name 'libcublasLt.so.13' -o -name 'libnccl.so.2' -o -name 'libcupti.so.13' \) \
          -not -path '*/proc/*' 2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
log() { echo "== $*" | tee -a "$work/session.log"; }

log "device"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$work/session.log"
"$bin/seqscale" info --json > "$work/info.json" 2>&1; cat "$work/info.json"
ldd "$bin/seqscale" | grep -E "not found" && log "missing libraries above"

# Stages (arguments; default all): tests, memcheck, matrices, predictions, peers. One device
# call is at most 10 minutes and a session has about 15: split the stages over calls, e.g.
#   gpu_session.sh tests memcheck    then    gpu_session.sh matrices predictions peers
stages="${*:-tests memcheck matrices predictions peers}"
want() { [[ " $stages " == *" $1 "* ]]; }

want tests && log "tests"
want tests && for t in "$bin"/*_tests; do
  "$t" --gtest_brief=1 > "$work/$(basename "$t").log" 2>&1; echo "$(basename "$t"): rc=$?" | tee -a "$work/session.log"
done
if want memcheck; then
  log "compute-sanitizer memcheck on kernel GPU tests"
  compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/kernels_tests" --gtest_filter='*Gpu*' \
    > "$work/memcheck.log" 2>&1; echo "memcheck rc=$?" | tee -a "$work/session.log"
fi

dev=$(python3 -c "import json;d=json.load(open('$work/info.json'));print(d['devices'][0]['name'].replace(' ','_'))" 2>/dev/null || echo unknown)
want matrices && for m in ceilings layernorm softmax evoformer steps ${SEQSCALE_EXTRA_MATRICES:-}; do
  [ -f "workloads/matrices/$m.json" ] || continue
  log "matrix $m"
  # The device budget is minutes per session: each matrix gets a slice, and an interrupted
  # matrix resumes from its journal in the next session (same --out).
  timeout "${SEQSCALE_MATRIX_TIMEOUT_S:-90}" "$bin/seqscale" bench --matrix "$m" --filter '/cuda/' --out "$work/$dev/$m" 2>> "$work/session.log" | tee -a "$work/session.log"
done
want predictions && log "predictions for the same points"
want predictions && for m in ceilings layernorm softmax evoformer; do
  "$bin/seqscale" bench --matrix "$m" --source model --cluster "$( [[ $dev == *H200* ]] && echo h200 || echo h100)" \
    --out "$work/$dev/$m-model" >> "$work/session.log" 2>&1
done
if want peers && [ -x scripts/peers.sh ]; then log "peers"; bash scripts/peers.sh "$work/$dev/peers" >> "$work/session.log" 2>&1; fi
tar -C "$work" -czf "$out/gpu_session.tar.gz" . && log "packed $out/gpu_session.tar.gz"
