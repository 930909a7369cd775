#!/usr/bin/env bash
# One device call of a GPU session (issue 12), run ON the lent H100/H200 from the repo root.
#   here:    scripts/device_build      -> .device/bin.tar.gz and .device/commit
#   device:  run(command="SEQSCALE_GIT_COMMIT=<literal sha> bash scripts/gpu_session.sh",
#                carry=[".device", "out/gpu_session"], timeout_s=560)
# README "GPU sessions" has the whole procedure (resume, where results go).
#
#   scripts/gpu_session.sh [STAGE...]     the stages named (default: every stage not done yet)
#   scripts/gpu_session.sh --plan         the stages and their time limits, nothing run
#   SEQSCALE_GPU_DRY_RUN=1 scripts/gpu_session.sh   the whole script on a CPU machine with
#                                         the normal build (GPU stages: one "no device" line)
#
# Why it is shaped like this (../shared/reviews/gpu-readiness-review.md, section 4):
# - A call is at most 10 minutes inside a 15-minute session that also pays for the
#   machine's start, and only $OUT comes back, even from a call killed at its limit. So
#   every stage runs under its own `timeout`, the limits sum to at most 480 s, and the
#   tarball in $OUT is re-packed after every stage: a call cut off still returns every
#   finished stage.
# - Fail fast: no device, or a library that `ldd` cannot find, stops the call after one line.
# - The points that decide the session's goals run first, and matrices resume point by
#   point: the work folder (out/gpu_session) comes back inside the tarball; extracted here
#   and carried into the next call, finished stages are skipped (stages/<name>.done) and
#   `seqscale bench` resumes each matrix from its journal.
# shellcheck disable=SC2317  # the stage_* functions are called by name ("stage_$2")
set -uo pipefail  # no -e: a stage that fails is recorded and the next one runs

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
root="$(cd "$(dirname "$self")/.." && pwd)"
cd "$root" || exit 2

# ---- the plan ----------------------------------------------------------------------------
# Order = priority. Limits in seconds; they sum to 480 (tests/harness/gpu_session_plan_test.sh).
STAGES=(facts tests memcheck checks ceilings evoformer peers predictions)
declare -A LIMIT=([facts]=25 [tests]=135 [memcheck]=45 [checks]=70 [ceilings]=25
                  [evoformer]=120 [peers]=50 [predictions]=10)
declare -A WHAT=(
  [facts]="nvidia-smi, seqscale info --json (stderr apart), ldd of every binary; stop if no device or a library is missing"
  [tests]="GPU tests only, SEQSCALE_GPU_REQUIRED=1, SEQSCALE_COMM_TIMEOUT_S=20: kernels_tests '*Gpu*' (60 s), layers_tests '*Gpu*' (20 s: the Evoformer block, the GPT layer and stack), comm_tests 'NcclGpu*:CudaStrategyMath*' (40 s), harness_tests '*Gpu*' (10 s); rc, skips, seqscale-tests line"
  [memcheck]="compute-sanitizer memcheck on the attention GPU tests: the causal kernels at awkward lengths (20 s), the Evoformer tensor-core kernels (25 s), then SIMT and naive; 'Device not supported' -> go on"
  [checks]="bench --check-only on every CUDA kernel point: evoformer (priority order), ceilings, softmax, layernorm; the causal attention at GenSLM's shape; the GPT layer and stack at tiny-gpt (transformer)"
  [ceilings]="ceilings matrix: gemm bf16 and copy (--no-check: checked in 'checks')"
  [evoformer]="evoformer matrix, priority order: fwd naive vs fused at the training shapes, kernel=simt vs tc, Evoformer block naive vs fused (time, peak), fwd+bwd at the training shapes; then the causal attention at GenSLM's shape (8K, 32K) and GenSLM's GPT layer (transformer matrix: fused by recompute mode, materialized, s 2K and 8K); then the rest of the evoformer matrix"
  [peers]="PyTorch peers (SDPA, eager, block) at the evoformer points above, then the ceilings, then causal attention and the GPT layer (eager, SDPA is_causal) at the points above; results written per point"
  [predictions]="the model's numbers for the same points (bench --source model --cluster h200|h100; CPU only)"
)
# Old stage names (earlier README): 'matrices' meant the measured matrices.
declare -A ALIAS=([matrices]="checks ceilings evoformer")

# The AlphaFold2 attention calls of initial training (N_res 256, N_seq 128, N_extra 1024)
# and finetuning (384, 512, 5120), as workloads/matrices/evoformer.json lists them: MSA row
# (N_seq x N_res, pair bias), MSA column (N_res x N_seq), triangle (N_res x N_res, pair
# bias), extra-MSA row, and the N=4 calls. Point ids sort their axes: B, D, H, L, N, dtype.
TRAIN_SHAPES='D=32,H=8,L=256,N=128|D=32,H=8,L=128,N=256|D=32,H=4,L=256,N=256|D=8,H=8,L=256,N=1024|D=16,H=4,L=256,N=4'
TRAIN_SHAPES+='|D=32,H=8,L=384,N=512|D=32,H=8,L=512,N=384|D=32,H=4,L=384,N=384|D=8,H=8,L=384,N=5120|D=16,H=4,L=384,N=4'
# The evoformer matrix in priority order (one `bench` call each, same --out): what decides
# the goals first, so a stage cut off by its limit has measured those. The last filter is
# the rest of the matrix (DS4Sci test shapes, the inference L sweep), resumed by later calls.
EVO_FILTERS=(
  "evoformer_attn_(naive|fused)_fwd/cuda/B=1,($TRAIN_SHAPES),dtype=bf16,pair_bias=[01]\$"
  "evoformer_attn_fused_fwd/cuda/.*,kernel=(simt|tc),"
  "evoformer_block/cuda/"
  "evoformer_attn_(naive|fused)_fwdbwd/cuda/B=1,($TRAIN_SHAPES),dtype=bf16,pair_bias=[01]\$"
  "/cuda/"
)
CEIL_FILTER='gemm/cuda/.*dtype=bf16|copy/cuda/'
# The peers run at the goal points (not the rest of the matrix), then the ceilings.
PEER_EVO_FILTERS=("${EVO_FILTERS[@]:0:4}")
# GenSLM's GPT layer (genslm-25b: hidden 6144, 64 heads of 96) at 2K and 8K tokens: the
# fused path in each recompute mode and the materialized baseline (and the fused layer at
# 32K, issue 14's MFU goal; the epilogues off at 8K; the atomic dQ at 8K and 32K), timed in the evoformer
# stage after its goal points (a stage cut off resumes them next call); the PyTorch peers
# (eager, SDPA) at the same shapes. The rest of workloads/matrices/transformer.json (32K,
# head size 128, the stack) is for longer sessions: bench --matrix transformer --filter /cuda/.
TRANSFORMER_FILTER='transformer_layer/cuda/(attn_bwd=atomic,|gemm_epilogues=0,)?model=genslm-25b,plan=attn=(fused,recompute=(none|selective|full)|materialized,recompute=none,mask=bool),seq=(2048|8192)$|transformer_layer/cuda/(attn_bwd=atomic,)?model=genslm-25b,plan=attn=fused,recompute=none,seq=32768$'
TRANSFORMER_CHECK_FILTER='transformer_(layer|stack)/cuda/.*model=tiny-gpt'
# The causal attention kernel at GenSLM's tp = 1 shape (64 heads of 96, B = 1) at 8K and
# 32K tokens: forward, and forward + backward with the atomic and the deterministic dQ
# (workloads/matrices/causal_attention.json), checked in 'checks', timed in the evoformer
# stage before GenSLM's layer, beside the PyTorch peers (SDPA is_causal, eager) at the same
# shapes: issue 14's goals (>= 50% of the bf16 GEMM rate, at least SDPA's speed).
CAUSAL_FILTER='causal_attention_fwd(bwd)?/cuda/B=1,D=96,H=64,S=(8192|32768),'


# SEQSCALE_GPU_LIMITS="evoformer=300 peers=120" gives a stage more (or less) time, e.g. in
# a second call that only resumes the matrices.
for kv in ${SEQSCALE_GPU_LIMITS:-}; do
  k="${kv%%=*}" v="${kv#*=}"
  if [ -z "${LIMIT[$k]+x}" ] || ! [[ "$v" =~ ^[0-9]+$ ]]; then
    echo "gpu_session.sh: SEQSCALE_GPU_LIMITS: '$kv' is not STAGE=SECONDS (stages: ${STAGES[*]})" >&2
    exit 2
  fi
  LIMIT[$k]=$v
done

plan_total() {
  local s t=0
  for s in "${STAGES[@]}"; do t=$((t + LIMIT[$s])); done
  echo "$t"
}

print_plan() {
  local i=0 s
  echo "gpu_session.sh plan: one device call, each stage under its own timeout, tarball re-packed after each"
  for s in "${STAGES[@]}"; do
    i=$((i + 1))
    printf '%d. %-12s limit_s=%-4d %s\n' "$i" "$s" "${LIMIT[$s]}" "${WHAT[$s]}"
  done
  printf 'total          limit_s=%d (device call: timeout_s=560; machine start comes on top)\n' "$(plan_total)"
}

# ---- helpers shared by the main script and the stage bodies ---------------------------------
now() { date +%s; }

# Runs a command for at most SECONDS, never past the stage's deadline. --foreground keeps it
# in the stage's process group (the stage's own timeout can still reach everything) and
# signals only the command itself: `seqscale bench` then stops its worker, journals, and
# leaves the point in flight unrecorded (a signal to the worker too would record it as a
# crash). The margin (SS_MARGIN: 8 s, 3 s in short stages) lets it stop, and be killed
# if it will not, before the stage's own timeout fires.
limited() {
  local want="$1"
  shift
  local margin="${SS_MARGIN:-8}"
  local left=$((SS_DEADLINE - $(now) - margin))
  ((want > left)) && want=$left
  if ((want < 1)); then
    echo "no time left for: $(basename "$1")" >> "$SS_WORK/logs/${SS_STAGE}.log"
    return 124
  fi
  timeout --foreground -k $((margin > 4 ? margin - 3 : 1)) "$want" "$@"
}

bin_path() {  # NAME -> the binary in SEQSCALE_BIN_DIR (flat, or a build tree)
  local d
  for d in "$SS_BIN_DIR" "$SS_BIN_DIR/harness/cli" "$SS_BIN_DIR/tests"; do
    if [ -f "$d/$1" ] && [ -x "$d/$1" ]; then
      echo "$d/$1"
      return 0
    fi
  done
  return 1
}

say() { echo "$SS_STAGE: $*"; }  # a stage's summary lines (console and session.log)

gtest_count() {  # BINARY FILTER -> how many tests the filter selects (no device needed)
  "$1" --gtest_filter="$2" --gtest_list_tests 2>/dev/null | grep -c '^  ' || true
}

# A `seqscale bench` run into one --out folder; its point lines go to the stage's log.
# Returns 0 when the run finished (failed points included: rc 1), 124 when time ran out.
bench_run() {  # OUTDIR MATRIX FILTER [BENCH ARGS...]
  local dir="$1" m="$2" f="$3"
  shift 3
  local log="$SS_WORK/logs/${SS_STAGE}.log" rc
  echo "## $(date -u +%FT%TZ) bench --matrix $m --filter '$f' $*" >> "$log"
  limited 600 "$SS_BIN" bench --matrix "$m" --filter "$f" --out "$dir" "$@" >> "$log" 2>&1
  rc=$?
  case $rc in
    0 | 1) return 0 ;;
    124 | 137) echo "## cut off by the stage's time limit (resumes next call)" >> "$log"; return 124 ;;
    *) say "bench $m '$f' exited $rc (see logs/${SS_STAGE}.log)"; tail -3 "$log" | sed "s/^/$SS_STAGE:   /"; return "$rc" ;;
  esac
}

# Dry run: how many points each filter adds (in order), so the regexes are checked here.
dry_counts() {  # MATRIX FILTER...
  local m="$1" f ids="$SS_WORK/dry/ids-$1" counts=()
  shift
  mkdir -p "$SS_WORK/dry"
  : > "$ids"
  for f in "$@"; do
    local before
    before=$(wc -l < "$ids")
    "$SS_BIN" bench --matrix "$m" --filter "$f" --out "$SS_WORK/dry/out" --dry-run 2>/dev/null | grep '/cuda/' |
      while read -r id; do grep -qxF "$id" "$ids" || echo "$id" >> "$ids"; done
    counts+=("$(($(wc -l < "$ids") - before))")
  done
  local IFS=+
  echo "$m ${counts[*]}"
}

summarize() {  # DIR LABEL [--pairs]
  python3 "$root/scripts/results_summary.py" "$1" --label "$2" "${@:3}" 2>/dev/null | sed "s/^/$SS_STAGE: /"
}

# ---- stage bodies (each runs as `gpu_session.sh __stage NAME`, under `timeout`) --------------
stage_facts() {
  local f="$SS_WORK/facts" b n missing="" rc
  rm -rf "$f"
  mkdir -p "$f"
  {
    echo "utc=$(date -u +%FT%TZ)"
    echo "commit=${SEQSCALE_GIT_COMMIT:-} (${SS_COMMIT_FROM})"
    echo "bin_dir=$SS_BIN_DIR"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    uname -a
    command -v python3 >/dev/null && python3 --version 2>&1
    command -v nvcc >/dev/null && nvcc --version 2>&1 | tail -2
  } > "$f/env.txt" 2>&1
  local have_smi=1
  if command -v nvidia-smi >/dev/null; then
    limited 8 nvidia-smi > "$f/nvidia-smi.txt" 2>&1
    limited 8 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,clocks.mem,temperature.gpu,power.draw \
      --format=csv > "$f/nvidia-smi.csv" 2>&1
  else
    have_smi=0
    if [ "$SS_DRY" != 1 ]; then
      echo "no device: nvidia-smi not found"
      return 3
    fi
  fi
  # Every binary needs cuBLAS/NCCL/CUPTI from the device: one missing library would fail
  # every stage while the clock runs. ldd also names a too-old glibc ("version ... not found").
  for n in seqscale kernels_tests layers_tests comm_tests harness_tests; do
    b=$(bin_path "$n") || continue
    ldd "$b" > "$f/ldd-$n.txt" 2>&1
    missing+=$(grep 'not found' "$f/ldd-$n.txt" | sed "s/^[[:space:]]*/$n: /;s/ =>.*//" | tr '\n' ' ')
  done
  if [ -n "$missing" ]; then
    echo "missing libraries: ${missing}(searched: ${LD_LIBRARY_PATH:-nothing})"
    return 3
  fi
  limited 15 "$SS_BIN" info --json > "$f/info.json" 2> "$f/info.err"
  rc=$?
  # stderr apart (L-12): a warning on stderr must not spoil the JSON and price an H200 as an H100.
  local facts
  facts=$(python3 - "$f/info.json" "$rc" <<'EOF'
import json, re, sys
path, rc = sys.argv[1], sys.argv[2]
try:
    d = json.load(open(path))
except (OSError, ValueError) as e:
    print(f"0\n\n\nseqscale info --json failed (rc {rc}): {e}")
    sys.exit()
devs = d.get("devices") or []
name = devs[0].get("name", "") if devs else ""
slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"^nvidia ", "", name.lower())).strip("-")
nccl = d.get("nccl_version", d.get("nccl", ""))
facts = (f"{name} | driver {d.get('cuda_driver', '')} | CUDA runtime {d.get('cuda_runtime', '')} "
         f"| NCCL {nccl}")
try:
    if int(nccl) < 22800:  # M-7: ncclAlltoAll needs NCCL 2.28
        facts += " (older than 2.28: all_to_all will fail)"
except (TypeError, ValueError):
    pass
# One field a line: names and reasons may hold any character but a newline.
print(d.get("device_count", 0), slug, name, facts if devs else d.get("no_device_reason", "no device"), sep="\n")
EOF
)
  local fields count slug name line
  mapfile -t fields <<< "$facts"
  count="${fields[0]:-0}" slug="${fields[1]:-}" name="${fields[2]:-}" line="${fields[3]:-}"
  if [ "${count:-0}" = 0 ] || [ -z "$slug" ]; then
    if [ "$SS_DRY" != 1 ]; then
      echo "no device: $line"
      return 3
    fi
    slug="cpu-dry-run" name="(no device)"
    line="no device (dry run): $line; nvidia-smi $([ "$have_smi" = 1 ] && echo found || echo 'not found')"
  fi
  local cluster=""
  case "$name" in
    *H200*) cluster=h200 ;;
    *H100*) cluster=h100 ;;
  esac
  [ "$SS_DRY" = 1 ] && cluster=h200
  echo "$slug" > "$f/device"
  echo "$name" > "$f/device_name"
  echo "$cluster" > "$f/cluster"
  say "$line | commit ${SEQSCALE_GIT_COMMIT:-"($SS_COMMIT_FROM)"} | libraries: all found"
}

stage_tests() {
  local specs=("kernels_tests|*Gpu*|60" "layers_tests|*Gpu*|20" "comm_tests|NcclGpu*:CudaStrategyMath*|40"
               "harness_tests|*Gpu*|10")
  local spec n filter lim b
  if [ "$SS_DRY" = 1 ]; then
    local would=()
    for spec in "${specs[@]}"; do
      IFS='|' read -r n filter lim <<< "$spec"
      b=$(bin_path "$n") && would+=("$n $(gtest_count "$b" "$filter")") || would+=("$n missing")
    done
    local joined
    joined=$(printf '%s, ' "${would[@]}")
    say "no device (dry run): would run GPU tests: ${joined%, }"
    return 0
  fi
  mkdir -p "$SS_WORK/tests"
  for spec in "${specs[@]}"; do
    IFS='|' read -r n filter lim <<< "$spec"
    b=$(bin_path "$n") || { say "$n: not in $SS_BIN_DIR"; continue; }
    local log="$SS_WORK/tests/$n.log" t0 rc
    t0=$(now)
    # GPU_REQUIRED: a skip for want of a device is exit 77, not a pass. COMM_TIMEOUT: a hung
    # NCCL op costs 20 s, not 300 (M-9).
    SEQSCALE_GPU_REQUIRED=1 SEQSCALE_COMM_TIMEOUT_S=20 \
      limited "$lim" "$b" --gtest_filter="$filter" --gtest_color=no > "$log" 2>&1
    rc=$?
    local passed failed skipped what line
    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\..*/\1/p' "$log" | tail -1)
    failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\{0,1\}, listed below.*/\1/p' "$log" | tail -1)
    skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}, listed below.*/\1/p' "$log" | tail -1)
    case $rc in
      0) what=ok ;; 1) what="tests failed" ;; 77) what="GPU tests skipped for want of a device" ;;
      124 | 137) what="TIMEOUT" ;; *) what="crashed?" ;;
    esac
    line=$(grep -m1 '^seqscale-tests: ' "$log")
    say "$n rc=$rc ($what): passed ${passed:-0}, failed ${failed:-0}, skipped ${skipped:-0}, $(($(now) - t0)) s${line:+ | $line}"
    grep '^\[  FAILED  \] [A-Za-z]' "$log" | sort -u | head -5 | sed "s/^/$SS_STAGE:   /"
  done
  return 0  # the stage ran: what the tests said is in the lines above
}

stage_memcheck() {
  local cs kt
  cs=$(command -v compute-sanitizer || true)
  [ -z "$cs" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" ] && cs="${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer"
  kt=$(bin_path kernels_tests) || { say "kernels_tests not in $SS_BIN_DIR"; return 0; }
  # The newest kernels first: memcheck slows kernels many times over, and its limit may
  # end the run early. The causal kernels' awkward-length test runs the tensor-core and
  # SIMT paths, forward and both backward modes, at tiles that end mid-row.
  local parts=("causal|*CausalAttentionGpu.EveryKernelAndModeMatchesReferenceAtAwkwardLengths*|20"
               "tc|*EvoformerAttnFusedTcGpu.*|25" "simt+naive|*EvoformerAttnFusedGpu.*:*EvoformerAttnNaiveGpu.*|60")
  local p name filter lim
  if [ "$SS_DRY" = 1 ]; then
    local n=0
    for p in "${parts[@]}"; do
      IFS='|' read -r name filter lim <<< "$p"
      n=$((n + $(gtest_count "$kt" "$filter")))
    done
    say "no device (dry run): would run ${cs:-compute-sanitizer (not found here)} on $n attention GPU tests"
    return 0
  fi
  if [ -z "$cs" ]; then
    say "compute-sanitizer not found (PATH, ${CUDA_HOME:-/usr/local/cuda}/bin): skipped"
    return 0
  fi
  mkdir -p "$SS_WORK/memcheck"
  for p in "${parts[@]}"; do
    IFS='|' read -r name filter lim <<< "$p"
    local log="$SS_WORK/memcheck/$name.log" rc t0
    t0=$(now)
    SEQSCALE_GPU_REQUIRED=1 limited "$lim" "$cs" --tool memcheck --error-exitcode 9 --print-limit 50 \
      "$kt" --gtest_filter="$filter" --gtest_color=no > "$log" 2>&1
    rc=$?
    if grep -q "Device not supported" "$log"; then
      say "compute-sanitizer says 'Device not supported' on this runtime: going on without it"
      return 0
    fi
    local what errors
    case $rc in
      0) what="no errors" ;; 9) what="MEMCHECK ERRORS" ;; 124 | 137) what="cut off by its limit" ;; *) what="tests failed or crashed" ;;
    esac
    errors=$(grep -m1 'ERROR SUMMARY' "$log" | sed 's/^=* *//')
    say "$name rc=$rc ($what), $(($(now) - t0)) s${errors:+ | $errors}"
  done
  return 0
}

stage_checks() {
  local dir="$SS_RES/checks" rc=0 r m
  if [ "$SS_DRY" = 1 ]; then
    say "no device (dry run): would check $(dry_counts evoformer "${EVO_FILTERS[@]}"), $(dry_counts ceilings /cuda/), $(dry_counts softmax /cuda/), $(dry_counts layernorm /cuda/), $(dry_counts causal_attention "$CAUSAL_FILTER"), $(dry_counts transformer "$TRANSFORMER_CHECK_FILTER") points"
    return 0
  fi
  local f
  for f in "${EVO_FILTERS[@]}"; do
    bench_run "$dir/evoformer" evoformer "$f" --check-only; r=$?
    [ "$r" = 124 ] && { rc=124; break; }
  done
  if [ "$rc" = 0 ]; then
    for m in ceilings softmax layernorm; do
      bench_run "$dir/$m" "$m" /cuda/ --check-only; r=$?
      [ "$r" = 124 ] && { rc=124; break; }
    done
  fi
  if [ "$rc" = 0 ]; then
    bench_run "$dir/causal_attention" causal_attention "$CAUSAL_FILTER" --check-only; r=$?
    [ "$r" = 124 ] && rc=124
  fi
  if [ "$rc" = 0 ]; then
    bench_run "$dir/transformer" transformer "$TRANSFORMER_CHECK_FILTER" --check-only; r=$?
    [ "$r" = 124 ] && rc=124
  fi
  for m in evoformer ceilings softmax layernorm causal_attention transformer; do
    [ -d "$dir/$m" ] && summarize "$dir/$m" "checks $m"
  done
  return "$rc"
}

# Timed stages skip the checked call: the checks stage made it (SEQSCALE_GPU_TIMED_CHECKS=1
# keeps it).
TIMED_ARGS=(--no-check)
[ "${SEQSCALE_GPU_TIMED_CHECKS:-0}" = 1 ] && TIMED_ARGS=()

stage_ceilings() {
  if [ "$SS_DRY" = 1 ]; then
    say "no device (dry run): would time $(dry_counts ceilings "$CEIL_FILTER") points"
    return 0
  fi
  local rc
  bench_run "$SS_RES/ceilings" ceilings "$CEIL_FILTER" "${TIMED_ARGS[@]}"; rc=$?
  summarize "$SS_RES/ceilings" ceilings
  return "$rc"
}

stage_evoformer() {
  if [ "$SS_DRY" = 1 ]; then
    say "no device (dry run): would time $(dry_counts evoformer "${EVO_FILTERS[@]}") points, in that order, the goal filters then $(dry_counts causal_attention "$CAUSAL_FILTER") and $(dry_counts transformer "$TRANSFORMER_FILTER") points before the rest"
    return 0
  fi
  local f rc=0 i=0
  for f in "${EVO_FILTERS[@]}"; do
    # After the Evoformer's four goal filters: GenSLM's attention and layer, then the rest
    # of the matrix.
    if [ "$i" = 4 ]; then
      bench_run "$SS_RES/causal_attention" causal_attention "$CAUSAL_FILTER" "${TIMED_ARGS[@]}" || { rc=$?; break; }
      bench_run "$SS_RES/transformer" transformer "$TRANSFORMER_FILTER" "${TIMED_ARGS[@]}" || { rc=$?; break; }
    fi
    i=$((i + 1))
    bench_run "$SS_RES/evoformer" evoformer "$f" "${TIMED_ARGS[@]}" || { rc=$?; break; }
  done
  summarize "$SS_RES/evoformer" evoformer --pairs
  [ -d "$SS_RES/causal_attention" ] && summarize "$SS_RES/causal_attention" causal_attention
  [ -d "$SS_RES/transformer" ] && summarize "$SS_RES/transformer" transformer
  return "$rc"
}

stage_peers() {
  if [ "$SS_DRY" = 1 ]; then
    local e c a t
    e=$(SEQSCALE_PEERS_DRY_RUN=1 bash "$root/scripts/peers.sh" "$SS_WORK/dry/peers" evoformer "${PEER_EVO_FILTERS[@]}" 2>/dev/null | grep -c /cuda/)
    c=$(SEQSCALE_PEERS_DRY_RUN=1 bash "$root/scripts/peers.sh" "$SS_WORK/dry/peers" ceilings "$CEIL_FILTER" 2>/dev/null | grep -c /cuda/)
    a=$(SEQSCALE_PEERS_DRY_RUN=1 bash "$root/scripts/peers.sh" "$SS_WORK/dry/peers" causal_attention "$CAUSAL_FILTER" 2>/dev/null | grep -c /cuda/)
    t=$(SEQSCALE_PEERS_DRY_RUN=1 bash "$root/scripts/peers.sh" "$SS_WORK/dry/peers" transformer "$TRANSFORMER_FILTER" 2>/dev/null | grep -c /cuda/)
    say "no device (dry run): would run $e evoformer, $c ceilings, $a causal attention and $t transformer peer points"
    return 0
  fi
  if ! command -v python3 >/dev/null; then
    say "no python3: skipped"
    return 0
  fi
  local log="$SS_WORK/logs/peers.log" rc=0 r m
  local -a runs=("evoformer" "ceilings" "causal_attention" "transformer")
  # PyTorch finds its own CUDA libraries (the wheels' RUNPATH); the toolkit folders put
  # first in LD_LIBRARY_PATH for seqscale would take precedence: give it the machine's own.
  local -a penv=(env -u LD_LIBRARY_PATH)
  [ -n "$SS_ORIG_LD_LIBRARY_PATH" ] && penv+=("LD_LIBRARY_PATH=$SS_ORIG_LD_LIBRARY_PATH")
  for m in "${runs[@]}"; do
    local -a filters=("$CEIL_FILTER")
    [ "$m" = evoformer ] && filters=("${PEER_EVO_FILTERS[@]}")
    [ "$m" = causal_attention ] && filters=("$CAUSAL_FILTER")
    [ "$m" = transformer ] && filters=("$TRANSFORMER_FILTER")
    echo "## $(date -u +%FT%TZ) peers $m" >> "$log"
    limited 600 "${penv[@]}" bash "$root/scripts/peers.sh" "$SS_RES/peers" "$m" "${filters[@]}" >> "$log" 2>&1
    r=$?
    if [ "$r" = 124 ] || [ "$r" = 137 ]; then
      rc=124  # cut off: the points measured so far are in results.json; resumes next call
      break
    fi
    [ "$r" = 0 ] || say "$m: peer run exited $r: $(grep -v '^\(ok\|oom\|skipped\|failed\) ' "$log" | tail -1)"
  done
  for m in "${runs[@]}"; do
    [ -d "$SS_RES/peers/$m" ] && summarize "$SS_RES/peers/$m" "peers $m"
  done
  return "$rc"
}

stage_predictions() {
  local cluster
  cluster=$(cat "$SS_WORK/facts/cluster" 2>/dev/null)
  if [ -z "$cluster" ]; then
    say "no cluster file for '$(cat "$SS_WORK/facts/device_name" 2>/dev/null)': skipped (price it here with --cluster)"
    return 0
  fi
  local log="$SS_WORK/logs/predictions.log" m f rc=0
  # The model rewrites its file on each call: one call per matrix, the union of the filters.
  for m in evoformer ceilings causal_attention transformer; do
    f=/cuda/
    [ "$m" = ceilings ] && f="$CEIL_FILTER"
    [ "$m" = causal_attention ] && f="$CAUSAL_FILTER"
    [ "$m" = transformer ] && f="$TRANSFORMER_FILTER"
    limited 10 "$SS_BIN" bench --matrix "$m" --filter "$f" --source model --cluster "$cluster" \
      --out "$SS_RES/model/$m" >> "$log" 2>&1 || rc=$?
  done
  say "$cluster: $(grep -h '^priced' "$log" | tail -2 | tr '\n' ';' | sed 's/;$//') -> results/<device>/model/ (rc $rc)"
  return "$rc"
}

if [ "${1:-}" = __stage ]; then
  SS_STAGE="$2"
  "stage_$2"
  exit $?
fi

# ---- main ---------------------------------------------------------------------------------
if [ "${1:-}" = --plan ]; then
  print_plan
  exit 0
fi
if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,12p' "$self"
  print_plan
  exit 0
fi

# Stages named on the command line run even when done before (a deliberate rerun; matrices
# still resume point by point); with none named, every stage not yet done runs.
declare -A WANT=()
explicit=0
for a in "$@"; do
  explicit=1
  for s in ${ALIAS[$a]:-$a}; do
    if [ -z "${LIMIT[$s]+x}" ]; then
      echo "gpu_session.sh: unknown stage '$a' (stages: ${STAGES[*]} --plan)" >&2
      exit 2
    fi
    WANT[$s]=1
  done
done
[ $explicit = 0 ] && for s in "${STAGES[@]}"; do WANT[$s]=1; done
WANT[facts]=1  # always: each call may land on a fresh machine, and it finds the device

export SS_DRY="${SEQSCALE_GPU_DRY_RUN:-0}"
if [ "$SS_DRY" = 1 ]; then
  # Never the real work folder: a dry run's files must not travel to the device as results.
  export SS_WORK="${SEQSCALE_GPU_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/seqscale-gpu-dry.XXXXXX")}"
  out="${OUT:-$SS_WORK.out}"
  export SS_BIN_DIR="${SEQSCALE_BIN_DIR:-$root/build}"
else
  export SS_WORK="${SEQSCALE_GPU_WORK:-$root/out/gpu_session}"
  out="${OUT:-$root/out/gpu}"
  if [ -n "${SEQSCALE_BIN_DIR:-}" ]; then
    export SS_BIN_DIR="$SEQSCALE_BIN_DIR"
  else
    # scripts/device_build packed the binaries (the carry limit); unpacked outside the tree
    # so nothing this large can travel back by mistake.
    export SS_BIN_DIR="${TMPDIR:-/tmp}/seqscale-device-bin"
    if [ ! -f "$root/.device/bin.tar.gz" ]; then
      echo "no .device/bin.tar.gz: run scripts/device_build here and name .device in carry"
      exit 3
    fi
    rm -rf "$SS_BIN_DIR"
    mkdir -p "$SS_BIN_DIR"
    tar -C "$SS_BIN_DIR" -xzf "$root/.device/bin.tar.gz" --strip-components=1 || { echo "cannot unpack .device/bin.tar.gz"; exit 3; }
  fi
fi
SS_BIN=$(bin_path seqscale) || { echo "no seqscale binary in $SS_BIN_DIR"; exit 3; }
export SS_BIN SEQSCALE_BIN="$SS_BIN" SEQSCALE_ROOT="$root"

# The commit (L-11): the device has no .git, so a `$(git rev-parse HEAD)` in the command
# string expands there to nothing. The literal SHA in SEQSCALE_GIT_COMMIT is best; else the
# commit device_build recorded for the binaries; else (dry run) the binary asks git.
if [ -n "${SEQSCALE_GIT_COMMIT:-}" ]; then
  SS_COMMIT_FROM="SEQSCALE_GIT_COMMIT"
elif [ "$SS_DRY" != 1 ] && [ -s "$root/.device/commit" ]; then
  SEQSCALE_GIT_COMMIT=$(cat "$root/.device/commit")
  SS_COMMIT_FROM=".device/commit (SEQSCALE_GIT_COMMIT not set)"
  export SEQSCALE_GIT_COMMIT
elif [ "$SS_DRY" = 1 ]; then
  SS_COMMIT_FROM="the binary asks git"
else
  SS_COMMIT_FROM="UNKNOWN: put the literal SHA in SEQSCALE_GIT_COMMIT"
fi
export SS_COMMIT_FROM

# A work folder carried from another commit is set aside, not resumed: stages done and
# matrices measured there belong to other binaries (each results file names one commit).
old_commit=$(cat "$SS_WORK/commit" 2>/dev/null)
if [ -n "${SEQSCALE_GIT_COMMIT:-}" ] && [ -n "$old_commit" ] && [ "$old_commit" != "$SEQSCALE_GIT_COMMIT" ]; then
  aside="$SS_WORK.commit-${old_commit:0:12}"
  rm -rf "$aside"
  mv "$SS_WORK" "$aside"
  echo "work folder was commit $old_commit, this call is $SEQSCALE_GIT_COMMIT: set aside as $aside, starting afresh"
fi
mkdir -p "$SS_WORK/stages" "$SS_WORK/logs" "$out"
[ -n "${SEQSCALE_GIT_COMMIT:-}" ] && echo "$SEQSCALE_GIT_COMMIT" > "$SS_WORK/commit"
log="$SS_WORK/session.log"


# cuBLAS, NCCL and CUPTI are too big to carry: the device's own copies, from known folders
# (a `find /` is slow and picked arbitrary copies). Toolkit first: it matches the nvcc the
# device has; then the PyTorch environment's wheels (NCCL is only there). find_spec reads
# `nvidia` (a namespace package: __file__ is None) and torch without importing them.
export SS_ORIG_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
libdirs=()
add_libdir() {
  local d r
  for d in "$@"; do
    [ -d "$d" ] || continue
    r=$(readlink -f "$d")
    [[ " ${libdirs[*]-} " == *" $r "* ]] || libdirs+=("$r")
  done
}
add_libdir /usr/local/cuda*/lib64 /usr/local/cuda*/extras/CUPTI/lib64 /usr/local/cuda*/targets/*/lib /usr/local/cuda*/lib
if command -v python3 >/dev/null; then
  mapfile -t pydirs < <(timeout 20 python3 - <<'EOF' 2>/dev/null
import importlib.util, os
for mod, sub in (("nvidia", "*"), ("torch", None)):
    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        continue
    for base in (spec.submodule_search_locations or []) if spec else []:
        if sub is None:
            print(os.path.join(base, "lib"))
        else:
            for name in sorted(os.listdir(base)):
                print(os.path.join(base, name, "lib"))
EOF
)
  add_libdir "${pydirs[@]}"
fi
LD_LIBRARY_PATH="$(IFS=:; echo "${libdirs[*]-}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

budget="${SEQSCALE_GPU_BUDGET_S:-$(($(plan_total) + 30))}"  # the call's own deadline
t_start=$(now)
deadline=$((t_start + budget))
call=$(($(cat "$SS_WORK/calls" 2>/dev/null || echo 0) + 1))
echo "$call" > "$SS_WORK/calls"

pack() {  # everything so far into $OUT: what a call cut off at its limit still returns
  cp "$log" "$out/gpu_session.log" 2>/dev/null
  tar -C "$SS_WORK" -czf "$out/gpu_session.tar.gz.partial" . 2>> "$log"
  [ $? -le 1 ] && mv -f "$out/gpu_session.tar.gz.partial" "$out/gpu_session.tar.gz"
}

echo "# call $call $(date -u +%FT%TZ) dry_run=$SS_DRY stages: $(for s in "${STAGES[@]}"; do [ -n "${WANT[$s]:-}" ] && printf '%s ' "$s"; done)budget ${budget}s" >> "$log"
status=0
for s in "${STAGES[@]}"; do
  [ -n "${WANT[$s]:-}" ] || continue
  marker="$SS_WORK/stages/$s.done"
  if [ "$s" != facts ] && [ -f "$marker" ] && [ $explicit = 0 ]; then
    echo "$s: done in an earlier call ($(cat "$marker")): skipped" | tee -a "$log"
    continue
  fi
  left=$((deadline - $(now)))
  if ((left < 10)); then
    echo "$s: no time left in this call (budget ${budget}s): next call" | tee -a "$log"
    continue
  fi
  lim=${LIMIT[$s]}
  ((lim > left)) && lim=$left
  t0=$(now)
  # `timeout` makes the stage a process group of its own (its pid): after the stage, what is
  # left of that group (a benchmark worker whose parent was killed, a sanitizer's target)
  # is killed too, so nothing runs on into the next stage.
  SS_DEADLINE=$((t0 + lim)) SS_MARGIN=$((lim >= 40 ? 8 : 3)) SS_RES="$SS_WORK/results/$(cat "$SS_WORK/facts/device" 2>/dev/null || echo unknown)" \
    timeout -k 3 "$lim" bash "$self" __stage "$s" < /dev/null 2>> "$SS_WORK/logs/$s.log" > >(tee -a "$log") &
  stage_pid=$!
  wait "$stage_pid"
  rc=$?
  kill -KILL -- "-$stage_pid" 2>/dev/null
  wait  # the tee: every line of the stage is in session.log before it is packed
  took=$(($(now) - t0))
  if [ "$s" = facts ] && [ "$rc" != 0 ]; then
    # 3: no device or a missing library, and the one line above says which.
    [ "$rc" = 3 ] || echo "facts: exited $rc after ${took}s: the device did not answer (logs/facts.log)" | tee -a "$log"
    pack
    exit 3
  fi
  if [ "$SS_DRY" = 1 ]; then
    echo "rc=$rc ${took}s call $call" > "$SS_WORK/stages/$s.dry"
  elif [ "$rc" = 0 ] && [ "$s" != facts ]; then
    echo "rc=0 ${took}s call $call $(date -u +%FT%TZ)" > "$marker"
  fi
  case $rc in
    0) [ "$s" != facts ] && echo "-- $s: finished in ${took}s (limit $lim)" >> "$log" ;;
    124 | 137) echo "-- $s: stopped at its limit (${lim}s): unfinished, resumes in the next call" | tee -a "$log"; status=1 ;;
    *) echo "-- $s: exited $rc after ${took}s (logs/$s.log)" | tee -a "$log"; status=1 ;;
  esac
  pack
done
echo "# call $call ended after $(($(now) - t_start))s" >> "$log"
pack
echo "packed $out/gpu_session.tar.gz ($(du -h "$out/gpu_session.tar.gz" | cut -f1)) after $(($(now) - t_start))s"
exit $status
