#!/usr/bin/env python3
"""scripts/peers/torch_peers.py without a GPU or PyTorch. --maxseq: the grid bisection finds
the largest value that runs with its boundary proven in at most ceil(log2(n + 1)) probes,
stops at a failed (non-OOM) probe, and the groups of transformer_maxseq.json are the GPT
layer's (per recompute mode and impl), never the stack's, which has no PyTorch peer. The
causal attention points: one SDPA and one eager peer per shape, keyed off seqscale's
tensor-core atomic point, ids that never collide with seqscale's.
  peers_test.py SOURCE_DIR"""
import json
import math
import os
import random
import re
import subprocess
import sys

src = sys.argv[1]
sys.path.insert(0, os.path.join(src, "scripts", "peers"))
import torch_peers as tp  # noqa: E402 -- the script under test, from the source tree


def fail(msg):
    sys.exit(f"FAIL: {msg}")


seed = int(os.environ.get("SEQSCALE_TEST_SEED", random.randrange(1 << 31)))
print(f"seed {seed} (SEQSCALE_TEST_SEED replays it)")
rng = random.Random(seed)
for _ in range(200):
    n = rng.randint(1, 300)
    values = sorted(rng.sample(range(1, 10 * n + 1), n))
    limit = rng.choice([0] + values + [10 * n + 1])  # nothing fits, a grid value, everything fits
    best, probes, _ = tp.bisect_grid(values, lambda v: ("ok", "") if v <= limit else ("oom", "too big"))
    want = max((v for v in values if v <= limit), default=None)
    if best != want:
        fail(f"grid of {n}, limit {limit}: got {best}, want {want}")
    if len(probes) > math.ceil(math.log2(n + 1)):
        fail(f"grid of {n}: {len(probes)} probes")
    status = {p["value"]: p["status"] for p in probes}
    if best is not None and status.get(best) != "ok":
        fail(f"the answer {best} was not itself probed ok")
    above = [v for v in values if v > (best if best is not None else -1)]
    if above and status.get(above[0]) != "oom":
        fail(f"the value after the answer ({above[0]}) was not probed oom: {probes}")
best, probes, reason = tp.bisect_grid([1, 2, 3, 4], lambda v: ("failed", "illegal address"))
if best is not None or len(probes) != 1 or reason != "illegal address":
    fail(f"a failed probe must end the search: {best} {probes} {reason}")

matrix = os.path.join(src, "workloads", "matrices", "transformer_maxseq.json")
todo = tp.peer_points(json.load(open(matrix)), [])
groups = tp.maxseq_groups(todo, "seq")
names = {name for name, _, _ in groups}
if names != {"transformer_layer"}:
    fail(f"maxseq groups of {sorted(names)}, want only transformer_layer")
keys = sorted((g["impl"], g["plan"]) for _, g, _ in groups)
want = sorted((impl, "recompute=" + r) for impl in ("torch_eager", "torch_sdpa") for r in ("none", "selective", "full"))
if keys != want:
    fail(f"groups {keys}, want {want}")
for _, g, values in groups:
    if values != list(range(8192, 1048576 + 1, 8192)):
        fail(f"{g}: the fused points' grid, not {values[:3]}...")
out = subprocess.run([sys.executable, os.path.join(src, "scripts", "peers", "torch_peers.py"), "--matrix", matrix,
                      "--out", "/nonexistent", "--maxseq", "seq", "--dry-run"], capture_output=True, text=True)
if out.returncode != 0 or len(out.stdout.splitlines()) != 6:
    fail(f"--dry-run --maxseq: rc {out.returncode}, {out.stdout!r} {out.stderr!r}")

causal = json.load(open(os.path.join(src, "workloads", "matrices", "causal_attention.json")))
peers = tp.peer_points(causal, [re.compile(r"causal_attention_fwd(bwd)?/cuda/B=1,D=96,H=64,S=(8192|32768),")])
ids = [pid for _, pid, _ in peers]
if len(ids) != 8 or len(set(ids)) != 8:
    fail(f"causal peers at GenSLM's shape: {ids}, want 2 benches x 2 lengths x (sdpa, eager)")
for _, pid, params in peers:
    if "kernel" in params or "deterministic" in params or params["impl"] not in ("torch_sdpa", "torch_eager"):
        fail(f"{pid}: a peer point carries seqscale's own variant axes or an unknown impl")
print("PASS: bisection over 200 random grids, failed probes stop, 6 layer groups, 8 causal peer points")
