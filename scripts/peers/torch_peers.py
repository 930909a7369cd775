#!/usr/bin/env python3
"""PyTorch peers beside seqscale's own kernels, in the same GPU session (ANCHORS.md s7).

Usage (on the device, PyTorch 2.11 there): torch_peers.py --matrix workloads/matrices/layernorm.json
                                             --out DIR [--filter RE]... [--commit SHA] [--dry-run]
Runs the matrix's CUDA points of the benchmarks it knows with PyTorch's own ops
(F.layer_norm forward and backward, torch.matmul, Tensor.copy_), timed like seqscale's
harness times its own: warm-up, an L2 flush before each sample, CUDA events, samples until
the relative noise is below max_noise or the caps; peak memory from
torch.cuda.max_memory_allocated after reset_peak_memory_stats. Writes DIR/results.json in
schema seqscale.results/1 with the same parameters plus impl=torch, so `seqscale report`
plots the two side by side and the ids never collide with seqscale's.

--filter (repeatable) selects points by seqscale's own point id (suite/bench/cuda/axis=value,...),
the same regexes `seqscale bench --filter` takes, and runs them in the order of the filters:
a GPU session puts the points that matter most first. DIR/results.json is rewritten after
every point and a rerun skips the points already there, so a run cut off by a time limit
keeps what it measured and the next one resumes. --dry-run lists the peer points and needs
no PyTorch. DS4Sci's kernel is JIT-built (minutes) on its first call: it runs only when
DeepSpeed has it prebuilt or already built, or when SEQSCALE_PEERS_DS4SCI=1.

--maxseq AXIS bisects AXIS instead of timing: per group of peer points equal but for AXIS,
the largest value of the matrix's grid whose one forward + backward runs, an OOM being a
probe's answer (memory grows with the axis, so the sorted grid is searched by halves; the
boundary is proven: the answer ran and the next grid value did not). DIR/measured_max_seq.json
takes seqscale bench --maxseq's format (a JSON array of rows: bench, backend, axis, group
with impl, measured_max, predicted_max null, first_infeasible_reason, probes), rewritten
after every group; a rerun skips the groups already there.
"""
import argparse
import glob
import itertools
import json
import os
import re
import socket
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # --dry-run lists points without PyTorch (the CPU machines have none)
    torch = None
    F = None

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16} if torch else {}


def axis_values(spec):
    if isinstance(spec, list):
        return spec
    (kind, a), = spec.items()
    if kind == "pow2":
        v, out = a[0], []
        while v <= a[1]:
            out.append(v)
            v *= 2
        return out
    if kind == "linear":
        return list(range(a[0], a[1] + 1, a[2]))
    if kind == "geometric":
        v, out = a[0], []
        while v <= a[1]:
            out.append(v)
            v *= a[2]
        return out
    sys.exit(f"unknown axis kind {kind}")


BENCH_TIMING = {}  # seqscale point id -> its benchmark entry's "timing" (over the matrix's)
PEER_TIMING = {}  # peer point id -> the same, for main()


def points(matrix):
    for b in matrix["benchmarks"]:
        backends = b["backend"] if isinstance(b["backend"], list) else [b["backend"]]
        if "cuda" not in backends:
            continue
        axes = {k: axis_values(v) for k, v in b.get("axes", {}).items()}
        for combo in itertools.product(*axes.values()):
            params = dict(zip(axes.keys(), combo))
            if any(all(params.get(k) == v for k, v in rule.items() if k != "backend")
                   and rule.get("backend", "cuda") == "cuda" for rule in b.get("exclude", [])):
                continue
            if "timing" in b:  # the benchmark's own timing rules (the GPU steps' longer samples)
                BENCH_TIMING[seqscale_id(b["name"], params)] = b["timing"]
            yield b["name"], params


class PeerSkipped(Exception):
    """An optional peer that cannot run here (not installed, or too slow to build)."""


_DS4SCI = None


def ds4sci_ready():
    """(ready, why): whether DS4Sci's kernel can run without a JIT build of minutes.

    A GPU session has a few minutes in all: DeepSpeed JIT-compiles the CUTLASS kernel with
    nvcc on its first call unless it was installed prebuilt (DS_BUILD_EVOFORMER_ATTN=1) or a
    build is already in torch's extension cache. SEQSCALE_PEERS_DS4SCI=1 allows the build,
    =0 skips DS4Sci always."""
    global _DS4SCI
    if _DS4SCI is not None:
        return _DS4SCI
    mode = os.environ.get("SEQSCALE_PEERS_DS4SCI", "auto")
    if mode == "1":
        _DS4SCI = (True, "")
    elif mode == "0":
        _DS4SCI = (False, "DS4Sci off (SEQSCALE_PEERS_DS4SCI=0)")
    else:
        try:
            from deepspeed.git_version_info import installed_ops  # noqa: PLC0415 -- optional peer
        except ImportError as e:
            _DS4SCI = (False, f"peer not installed: {e}")
        else:
            cache = os.environ.get("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))
            built = glob.glob(os.path.join(cache, "**", "evoformer_attn*", "*.so"), recursive=True)
            if installed_ops.get("evoformer_attn") or built:
                _DS4SCI = (True, "")
            else:
                _DS4SCI = (False, "DS4Sci would JIT-build its kernel (minutes): SEQSCALE_PEERS_DS4SCI=1 allows it")
    return _DS4SCI


def make_work(name, p):
    """Returns (fn, flops, bytes) for one point, or None if this peer has no such op."""
    dev = "cuda"
    if name in ("layernorm_fwd", "layernorm_bwd"):
        dt = DTYPES[p["dtype"]]
        rows, cols = p["rows"], p["cols"]
        es = torch.tensor([], dtype=dt).element_size()
        x = torch.randn(rows, cols, device=dev, dtype=dt, requires_grad=name == "layernorm_bwd")
        w = torch.randn(cols, device=dev, dtype=dt, requires_grad=name == "layernorm_bwd")
        b = torch.randn(cols, device=dev, dtype=dt, requires_grad=name == "layernorm_bwd")
        if name == "layernorm_fwd":
            return (lambda: F.layer_norm(x, (cols,), w, b, 1e-5)), 9.0 * rows * cols, \
                2.0 * rows * cols * es + 2.0 * cols * es + 8.0 * rows
        y = F.layer_norm(x, (cols,), w, b, 1e-5)
        dy = torch.randn_like(y)
        return (lambda: torch.autograd.grad(y, (x, w, b), dy, retain_graph=True)), 14.0 * rows * cols, \
            3.0 * rows * cols * es + cols * es + 8.0 * rows + 8.0 * cols
    if name == "gemm":
        dt = DTYPES[p["dtype"]]
        m, n, k = p["m"], p["n"], p["k"]
        es = torch.tensor([], dtype=dt).element_size()
        a = torch.randn(m, k, device=dev, dtype=dt)
        bm = torch.randn(k, n, device=dev, dtype=dt)
        return (lambda: torch.matmul(a, bm)), 2.0 * m * n * k, es * (m * k + k * n + m * n)
    if name.startswith("evoformer_attn_") and name.endswith(("_fwd", "_fwdbwd")):
        # Evoformer attention at the same point, four ways (impl says which):
        #   torch_sdpa  F.scaled_dot_product_attention with the float bias mask + pair bias
        #               (memory-efficient backend; bias gradients supported)
        #   torch_eager matmul, add, softmax, matmul: OpenFold's plain-PyTorch path
        #   cueq        cuEquivariance's fused triangle attention (if installed)
        #   ds4sci      DeepSpeed4Science's EvoformerAttention (if installed and buildable)
        dt = DTYPES[p["dtype"]]
        B, N, L, H, D = p["B"], p["N"], p["L"], p["H"], p["D"]
        bwd = name.endswith("_fwdbwd")
        es = torch.tensor([], dtype=dt).element_size()
        q, k, v = (torch.randn(B, N, L, H, D, device=dev, dtype=dt).transpose(-2, -3).requires_grad_(bwd)
                   for _ in range(3))  # [B, N, H, L, D] views of [B, N, L, H, D]
        mask = torch.zeros(B, N, 1, 1, L, device=dev, dtype=dt)
        pair = torch.randn(B, 1, H, L, L, device=dev, dtype=dt, requires_grad=bwd) if p.get("pair_bias") else None
        bias = mask + pair if pair is not None else mask
        impl = p["impl"]

        if impl == "cueq":
            # cuEquivariance's triangle attention kernel: [B, N, H, L, D] views, boolean
            # key mask, fp32-cast pair bias (needs a pair bias; B=1 only in its API).
            import cuequivariance_torch as cuet  # noqa: PLC0415 -- optional peer
            keep = torch.ones(B, N, 1, 1, L, device=dev, dtype=torch.bool)
            pb = pair if pair is not None else torch.zeros(B, 1, H, L, L, device=dev, dtype=dt)

            def forward():
                return cuet.triangle_attention(q, k, v, pb, mask=keep)
        elif impl == "ds4sci":
            # DeepSpeed4Science's CUTLASS kernel (JIT-built on first call): [B, N, L, H, D].
            ready, why = ds4sci_ready()
            if not ready:
                raise PeerSkipped(why)
            from deepspeed.ops.deepspeed4science import DS4Sci_EvoformerAttention  # noqa: PLC0415
            ql, kl, vl = (t.transpose(-2, -3) for t in (q, k, v))

            def forward():
                o = DS4Sci_EvoformerAttention(ql, kl, vl, [mask, pair] if pair is not None else [mask])
                return o.transpose(-2, -3)
        else:
            def forward():
                b = mask + pair if pair is not None else mask
                if impl == "torch_sdpa":
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=b)
                s = torch.matmul(q, k.transpose(-1, -2)) / D ** 0.5 + b
                return torch.matmul(torch.softmax(s, dim=-1), v)

        if not bwd:
            fn = forward
        else:
            do = torch.randn(B, N, H, L, D, device=dev, dtype=dt)
            inputs = [t for t in (q, k, v, pair) if t is not None]
            fn = lambda: torch.autograd.grad(forward(), inputs, do)  # noqa: E731
        del bias
        flops = (4.0 + (10.0 if bwd else 0.0)) * B * N * H * L * L * D
        return fn, flops, 4.0 * B * N * L * H * D * es
    if name in ("causal_attention_fwd", "causal_attention_fwdbwd"):
        # GPT causal self-attention at the same point (B, S, H, D), two ways:
        #   torch_sdpa  F.scaled_dot_product_attention(is_causal=True) on [B, H, S, D]
        #               (PyTorch picks its flash kernel at these shapes)
        #   torch_eager Q K^T / sqrt(D), the causal mask, softmax, P V (the S^2 baseline)
        # FLOPs in seqscale's convention (causal_attention_cost.h): forward 2 B H S^2 D,
        # backward 2.5x, so TFLOP/s compare with seqscale's own points.
        dt = DTYPES[p["dtype"]]
        B, S, H, D = p["B"], p["S"], p["H"], p["D"]
        bwd = name.endswith("_fwdbwd")
        es = torch.tensor([], dtype=dt).element_size()
        q, k, v = (torch.randn(B, H, S, D, device=dev, dtype=dt).requires_grad_(bwd) for _ in range(3))
        impl = p["impl"]
        if impl == "torch_sdpa":
            def forward():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            causal = torch.ones(S, S, device=dev, dtype=torch.bool).tril()

            def forward():
                s = torch.matmul(q, k.transpose(-1, -2)) / D ** 0.5
                return torch.matmul(torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1), v)
        if not bwd:
            fn = forward
        else:
            do = torch.randn(B, H, S, D, device=dev, dtype=dt)
            fn = lambda: torch.autograd.grad(forward(), (q, k, v), do)  # noqa: E731
        fwd_flops = 2.0 * B * H * S * S * D
        return fn, fwd_flops * (3.5 if bwd else 1.0), (8.0 if bwd else 4.0) * B * S * H * D * es
    if name == "evoformer_block":
        # One Evoformer block, forward + backward, in plain PyTorch (evoformer_block_torch.py)
        # in the point's dtype: torch_eager (OpenFold's matmul + softmax attention) and
        # torch_sdpa (SDPA with the float pair bias).
        from evoformer_block_torch import make_block_step  # noqa: PLC0415 -- beside this file
        impl = p["impl"]
        dt = DTYPES[p.get("dtype", "fp32")]
        model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "workloads", "models",
                             p["model"] + ".json")
        fn, _ = make_block_step(model, p.get("stack", "main"), impl, dtype=dt)
        return fn, 0.0, 0.0
    if name == "transformer_layer":
        # One GPT layer, forward + backward, in plain PyTorch (transformer_layer_torch.py) in
        # the point's dtype (bf16 unless the point says): torch_eager (materialized causal
        # attention) and torch_sdpa (SDPA, is_causal=True); the plan's recompute mode.
        from transformer_layer_torch import make_layer_step  # noqa: PLC0415 -- beside this file
        fn, _ = make_layer_step(p, p["impl"], dtype=DTYPES[p.get("dtype", "bf16")])
        return fn, 0.0, 0.0
    if name == "copy":
        src = torch.ones(p["bytes"], device=dev, dtype=torch.uint8)
        dst = torch.empty_like(src)
        return (lambda: dst.copy_(src)), 0.0, 2.0 * p["bytes"]
    return None


def measure(fn, timing):
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")
    t0 = time.perf_counter()
    while True:
        fn()
        torch.cuda.synchronize()
        if time.perf_counter() - t0 >= timing.get("warmup_s", 0.05):
            break
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples, s0 = [], time.perf_counter()
    while True:
        flush.zero_()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) * 1e-3)
        n = len(samples)
        noise = statistics.stdev(samples) / statistics.mean(samples) if n > 1 else 1.0
        if n >= timing.get("min_samples", 10) and noise < timing.get("max_noise", 0.005):
            break
        if n >= timing.get("max_samples", 1000) or time.perf_counter() - s0 > timing.get("time_cap_s", 2.0):
            break
    return samples


def stats(samples):
    s = sorted(samples)
    med = statistics.median(s)
    mean = statistics.mean(s)
    sd = statistics.stdev(s) if len(s) > 1 else 0.0
    mad = statistics.median([abs(x - med) for x in s])
    return {"n": len(s), "median_s": med, "min_s": s[0], "max_s": s[-1], "mean_s": mean,
            "stddev_s": sd, "rel_noise": sd / mean if len(s) > 1 and mean > 0 else 0.0, "mad_s": mad}


STEP_BENCHES = ("evoformer_block", "transformer_layer")


def seqscale_id(name, params):
    """The id seqscale gives the same point (suite/bench/backend/axis=value,... sorted)."""
    suite = "steps" if name in STEP_BENCHES else "kernels"
    return suite + "/" + name + "/cuda/" + ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def peer_points(matrix, filters):
    """(name, seqscale id, peer params) in the filters' order, each peer point once."""
    chosen, seen = [], set()
    all_points = list(points(matrix))
    for rx in filters or [None]:
        for name, params in all_points:
            sid = seqscale_id(name, params)
            if sid in seen or (rx is not None and not rx.search(sid)):
                continue
            seen.add(sid)
            chosen.append((name, sid, params))
    out, peer_ids = [], set()
    for name, sid, params in chosen:
        if name.startswith("evoformer_attn_") and ("_fused_" not in name or params.get("kernel", "tc") != "tc"):
            continue  # one PyTorch run per point: keyed off the fused (tensor-core) entries
        if name == "evoformer_block" and params.get("attn") != "fused":
            continue
        if name == "transformer_layer":
            plan = dict(kv.split("=", 1) for kv in params.get("plan", "").split(",") if "=" in kv)
            if plan.get("attn", "fused") != "fused":
                continue  # one PyTorch run per (shape, recompute): keyed off the fused points
            params = dict(params, plan="recompute=" + plan.get("recompute", "none"))
        if name.startswith("causal_attention_") and (params.get("kernel", "tc") != "tc"
                                                    or params.get("deterministic", 0) not in (0, "0")):
            continue  # one PyTorch run per shape: keyed off the tensor-core, atomic points
        if name.startswith("evoformer_attn_"):
            impls = ["torch_sdpa", "torch_eager", "cueq", "ds4sci"]
        elif name.startswith("causal_attention_"):
            impls = ["torch_sdpa", "torch_eager"]
        elif name in ("evoformer_block", "transformer_layer"):
            impls = ["torch_eager", "torch_sdpa"]
        else:
            impls = ["torch"]
        # The axes that name seqscale's own variant (attn, kernel, deterministic, attn_bwd,
        # gemm_epilogues) mean nothing for a peer.
        base = {k: v for k, v in params.items()
                if k not in ("attn", "kernel", "deterministic", "attn_bwd", "gemm_epilogues")}
        for impl in impls:
            pp = dict(base, impl=impl)
            pid = seqscale_id(name, pp)
            if pid not in peer_ids:  # kernel=tc and the default fused point are one peer point
                peer_ids.add(pid)
                if sid in BENCH_TIMING:
                    PEER_TIMING[pid] = BENCH_TIMING[sid]
                out.append((name, pid, pp))
    return out


def write_results(path, run, points_out):
    """Atomic rewrite (after every point): a run cut off keeps every finished point."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"schema": "seqscale.results/1", "run": run, "points": points_out}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def bisect_grid(values, probe):
    """The largest of the sorted `values` whose probe(value) is "ok", searched by halves.
    probe answers ("ok" | "oom" | "failed", reason). Returns (largest or None, probes,
    first infeasible reason); a failed probe (not an OOM) ends the search there."""
    lo, hi, probes, infeasible = -1, len(values), [], ""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        status, reason = probe(values[mid])
        probes.append({"value": values[mid], "status": status, "reason": reason})
        if status == "ok":
            lo = mid
        elif status == "oom":
            hi, infeasible = mid, reason
        else:
            return None, probes, reason
    return (values[lo] if lo >= 0 else None), sorted(probes, key=lambda p: p["value"]), infeasible


# The steps a peer runs whole (forward + backward), which --maxseq can probe.
MAXSEQ_BENCHES = STEP_BENCHES


def maxseq_groups(todo, axis):
    """(name, group params without the axis, sorted axis values) per group of peer points
    of a step this peer runs (the stack has no PyTorch peer)."""
    groups = {}
    for name, _, params in todo:
        if axis not in params or name not in MAXSEQ_BENCHES:
            continue
        group = {k: v for k, v in params.items() if k != axis}
        key = (name, json.dumps(group, sort_keys=True))
        groups.setdefault(key, (name, group, set()))[2].add(int(params[axis]))
    return [(name, group, sorted(vals)) for name, group, vals in groups.values()]


def probe_step(name, params):
    """One forward + backward of the peer point: ("ok" | "oom" | "failed", reason)."""
    work = None
    try:
        torch.cuda.empty_cache()
        work = make_work(name, params)
        if work is None:
            return "failed", "no peer for this point"
        work[0]()
        torch.cuda.synchronize()
        return "ok", ""
    except torch.cuda.OutOfMemoryError as e:
        return "oom", str(e).splitlines()[0]
    except Exception as e:  # noqa: BLE001 -- a failed probe is a row, not a crash
        return "failed", f"{type(e).__name__}: {e}"
    finally:
        del work
        torch.cuda.empty_cache()


def run_maxseq(todo, axis, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "measured_max_seq.json")
    rows = json.load(open(path)) if os.path.exists(path) else []
    done = {(r["bench"], json.dumps(r["group"], sort_keys=True)) for r in rows}
    for name, group, values in maxseq_groups(todo, axis):
        if (name, json.dumps(group, sort_keys=True)) in done:
            continue
        best, probes, reason = bisect_grid(values, lambda v: probe_step(name, dict(group, **{axis: v})))
        rows.append({"bench": name, "backend": "cuda", "axis": axis, "group": group, "measured_max": best,
                     "predicted_max": None, "first_infeasible_reason": reason, "probes": probes})
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        print(f"maxseq {name} {json.dumps(group, sort_keys=True)}: {axis} {best} "
              f"({len(probes)} probes of {len(values)} values)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrix", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--filter", action="append", default=[],
                    help="regex on seqscale's point id; repeatable, run in this order")
    ap.add_argument("--commit", default=os.environ.get("SEQSCALE_GIT_COMMIT", "unknown"))
    ap.add_argument("--retry-failed", action="store_true", help="rerun points recorded as failed")
    ap.add_argument("--dry-run", action="store_true", help="list the peer points and exit (no PyTorch needed)")
    ap.add_argument("--maxseq", metavar="AXIS", help="bisect AXIS for the largest value that runs (no timing)")
    args = ap.parse_args()
    matrix = json.load(open(args.matrix))
    try:
        filters = [re.compile(f) for f in args.filter]
    except re.error as e:
        sys.exit(f"torch_peers: --filter is not a valid regex: {e}")
    todo = peer_points(matrix, filters)
    if args.dry_run:
        if args.maxseq:
            for name, group, values in maxseq_groups(todo, args.maxseq):
                print(f"{name} {json.dumps(group, sort_keys=True)}: {len(values)} values of {args.maxseq}")
            return
        for _, pid, _ in todo:
            print(pid)
        return
    if torch is None:
        sys.exit("torch_peers: PyTorch is not installed")
    if args.maxseq:
        if not maxseq_groups(todo, args.maxseq):
            sys.exit(f"torch_peers: --maxseq: no selected point has the axis '{args.maxseq}'")
        run_maxseq(todo, args.maxseq, args.out)
        return
    timing = matrix.get("timing", {})
    props = torch.cuda.get_device_properties(0)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run = {"git_commit": args.commit, "host": socket.gethostname(), "device": props.name,
           "driver": "", "cuda_runtime": torch.version.cuda or "", "nccl": "", "mpi": "",
           "command_line": " ".join(sys.argv), "started_utc": now,
           "seqscale_version": "", "world_size": 1, "ranks": [],
           "extra": {"peer": f"torch {torch.__version__}"}}
    out = []
    if os.path.exists(path):  # resume: keep what an earlier (maybe interrupted) run measured
        old = json.load(open(path))
        if old.get("run", {}).get("device") != props.name:
            sys.exit(f"torch_peers: {path}: field 'run.device' is '{old.get('run', {}).get('device')}' "
                     f"but this machine is '{props.name}': use another --out")
        run = old["run"]
        run.setdefault("extra", {}).setdefault("resumed_utc", []).append(now)
        out = old.get("points", [])
    done = {p["id"] for p in out if not (args.retry_failed and p.get("status") == "failed")}
    print(f"torch_peers {os.path.basename(args.matrix)}: {len(todo)} points, "
          f"{sum(pid in done for _, pid, _ in todo)} already in {path}", flush=True)
    for name, pid, params in todo:
        if pid in done:
            continue
        suite = "steps" if name in STEP_BENCHES else "kernels"
        rec = {"id": pid, "suite": suite, "bench": name, "backend": "cuda", "params": params,
               "status": "ok", "reason": "", "source": "measured", "samples_s": [],
               "declared": {"flops": 0.0, "bytes": 0.0}, "metrics": {}, "wall_s": 0.0}
        t0 = time.perf_counter()
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            work = make_work(name, params)
            if work is None:
                continue
            fn, flops, byts = work
            rec["samples_s"] = measure(fn, dict(timing, **PEER_TIMING.get(pid, {})))
            rec["declared"] = {"flops": flops, "bytes": byts}
            rec["metrics"]["peak_bytes"] = float(torch.cuda.max_memory_allocated() - base)
        except torch.cuda.OutOfMemoryError as e:
            rec["status"], rec["reason"] = "oom", str(e).splitlines()[0]
        except PeerSkipped as e:
            rec["status"], rec["reason"] = "skipped", str(e)
        except ImportError as e:  # an optional peer (cuEquivariance, DeepSpeed) not installed
            rec["status"], rec["reason"] = "skipped", f"peer not installed: {e}"
        except Exception as e:  # noqa: BLE001 -- a failed point is a record, not a crash
            rec["status"], rec["reason"] = "failed", f"{type(e).__name__}: {e}"
        rec["stats"] = stats(rec["samples_s"]) if rec["samples_s"] else stats([0.0])
        med = rec["stats"]["median_s"]
        if rec["status"] == "ok" and med > 0:
            if rec["declared"]["flops"]:
                rec["metrics"]["TFLOPs"] = rec["declared"]["flops"] / med / 1e12
            if rec["declared"]["bytes"]:
                rec["metrics"]["GBps"] = rec["declared"]["bytes"] / med / 1e9
        rec["wall_s"] = time.perf_counter() - t0
        out = [p for p in out if p["id"] != pid] + [rec]
        write_results(path, run, out)
        print(f"{rec['status']} {pid} median {med * 1e6:.2f} us"
              + (f"  ({rec['reason']})" if rec["reason"] else ""), flush=True)
    if not os.path.exists(path):
        write_results(path, run, out)


if __name__ == "__main__":
    main()
