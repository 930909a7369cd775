#!/usr/bin/env bash
# Peers on the device, same session as seqscale's own runs (called by gpu_session.sh):
# PyTorch ops at the CUDA points of the layernorm and ceilings matrices; for attention
# and the evoformer matrix: SDPA with the float bias, eager PyTorch (OpenFold's path),
# cuEquivariance and DS4Sci when installed, and one Evoformer block in plain PyTorch.
set -uo pipefail
out="$1"
for m in layernorm ceilings evoformer; do
  python3 scripts/peers/torch_peers.py --matrix "workloads/matrices/$m.json" --out "$out/$m" || echo "peer $m failed"
done
