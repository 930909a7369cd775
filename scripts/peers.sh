#!/usr/bin/env bash
# PyTorch peers on the device, in the same session as seqscale's own runs (gpu_session.sh
# calls this): PyTorch ops at the CUDA points of the layernorm and ceilings matrices; for
# attention and the evoformer matrix: SDPA with the float bias, eager PyTorch (OpenFold's
# path), cuEquivariance and DS4Sci when installed (DS4Sci only if it needs no JIT build of
# minutes: scripts/peers/torch_peers.py), and one Evoformer block in plain PyTorch; for the
# causal_attention matrix: SDPA is_causal and eager causal attention; for the transformer
# matrix: one GPT layer in plain PyTorch (eager and SDPA is_causal).
#
#   scripts/peers.sh OUT                          layernorm, ceilings, evoformer, causal_attention,
#                                                 transformer: every CUDA point
#   scripts/peers.sh OUT MATRIX [FILTER...]       one matrix; FILTERs are seqscale point-id
#                                                 regexes, run in the order given
# Results: OUT/<matrix>/results.json, rewritten after every point; a rerun resumes, so a
# peer run cut off by its time limit keeps what it measured. SEQSCALE_PEERS_DRY_RUN=1 lists
# the points instead (no PyTorch needed).
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/peers.sh OUT [MATRIX [FILTER...]]" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
shift
export PYTHONUNBUFFERED=1  # progress lines reach the session log as they happen
dry=()
[ "${SEQSCALE_PEERS_DRY_RUN:-0}" = 1 ] && dry=(--dry-run)

peer_args() {  # MATRIX [FILTER...] -> torch_peers.py's arguments
  local m="$1" f
  shift
  printf '%s\0' "$root/scripts/peers/torch_peers.py" --matrix "$root/workloads/matrices/$m.json" --out "$out/$m"
  for f in "$@"; do printf '%s\0' --filter "$f"; done
  [ ${#dry[@]} -gt 0 ] && printf '%s\0' "${dry[@]}"
  return 0
}

if [ $# -eq 0 ]; then
  rc=0
  for m in layernorm ceilings evoformer causal_attention transformer; do
    mapfile -d '' -t args < <(peer_args "$m")
    python3 "${args[@]}" || { echo "peer $m failed (rc=$?)"; rc=1; }
  done
  exit "$rc"
fi
# One matrix: exec, so that a time limit's SIGTERM reaches the peer itself (it stops at
# once; every finished point is already in results.json).
mapfile -d '' -t args < <(peer_args "$@")
exec python3 "${args[@]}"
