"""Throughput (tokens/s) and TFLOP/s per GPU of training steps, vs sequence length and vs GPU
count with the scaling efficiency.

Data: `steps` points (transformer_layer, transformer_stack: params model, plan, seq, micro_batch; metric
tokens_per_step, the tokens one data-parallel replica processes per step), measured solid and
priced (`source: model`) dashed, plus the fastest plan per GPU count of `seqscale maxseq
--at-seq` files. Tokens/s = tokens_per_step x dp / median step time; TFLOP/s per GPU is the
point's declared FLOPs (one rank's step) over its median time.

Scaling efficiency is the per-GPU throughput at N GPUs over that at the smallest count. A series
whose tokens per step stay fixed as GPUs grow is strong scaling (efficiency = speedup / (N/N0));
one whose tokens per step grow with the GPUs is weak scaling (efficiency = per-GPU throughput
kept); both reduce to the same ratio, the label says which one a series is.
"""
import collections

import figures
import report_doc as doc
from report_data import data_parallel, fmt, median_s, metric, status_counts


def step_rows(ctx):
    """One dict per steps point: its series keys and throughput (None where it did not run)."""
    rows = []
    for p in ctx.points(suite="steps"):
        prm = p.get("params", {})
        if "seq" not in prm:
            continue
        gpus = int(prm.get("gpus", 1))
        t = median_s(p)
        tokens = metric(p, "tokens_per_step")
        dp = data_parallel(prm.get("plan", ""), gpus)
        rows.append({"point": p, "model": prm.get("model", p["bench"]), "plan": prm.get("plan", ""),
                     "gpus": gpus, "seq": int(prm["seq"]), "micro_batch": int(prm.get("micro_batch", 1)),
                     "backend": p["backend"], "source": p.get("source", "measured"),
                     "tokens_step": tokens * dp if tokens else None,
                     "tokens_per_s": tokens * dp / t if (t and tokens) else None,
                     "tflops_per_gpu": metric(p, "TFLOPs") if t else None})
    return rows


def fastest_rows(ctx):
    """maxseq --at-seq entries: the fastest plan of a preset at one length, per GPU count."""
    rows = []
    for e in ctx.scaling:
        f = e.get("fastest")
        if not f:
            continue
        found = f.get("found")
        rows.append({"model": e["model"], "plan": f"fastest {e['preset']} ({e['cluster']})", "gpus": e["gpus"],
                     "seq": f["seq"], "micro_batch": 1, "backend": "model", "source": "model", "point": None,
                     "tokens_step": None,
                     "tokens_per_s": f.get("tokens_per_s") if found else None,
                     "tflops_per_gpu": f.get("tflops_per_gpu") if found else None})
    return rows


def _label(r, keys):
    return " ".join(f"{r[k]}" if k in ("model", "plan") else f"{k}={r[k]}" for k in keys) + f" [{r['backend']}/{r['source']}]"


def _plot(ax, xs, ys, source, label):
    """A line with gaps where there is no value; False when nothing could be drawn."""
    if not any(figures.positive(y) for y in ys):
        return False
    ys = [y if figures.positive(y) else figures.NAN for y in ys]
    ax.plot(xs, ys, marker="o", linestyle="--" if source == "model" else "-", label=label)
    return True


def _vs_seq(ctx, rows):
    series = collections.defaultdict(list)
    for r in rows:
        series[(r["model"], r["plan"], r["gpus"], r["micro_batch"], r["backend"], r["source"])].append(r)
    fig, (ax_t, ax_f) = figures.new_figure(1, 2)
    drawn = False
    for key, pts in sorted(series.items()):
        pts.sort(key=lambda r: r["seq"])
        label = _label(pts[0], ("model", "plan", "gpus", "micro_batch"))
        xs = [r["seq"] for r in pts]
        drawn |= _plot(ax_t, xs, [r["tokens_per_s"] for r in pts], key[-1], label)
        _plot(ax_f, xs, [r["tflops_per_gpu"] for r in pts], key[-1], label)
    if not drawn:
        for ax in (ax_t, ax_f):
            figures.gap(ax, "no timed steps results (run the steps matrix)"
                            + (f": {status_counts([r['point'] for r in rows])}" if rows else ""))
    else:
        for ax, ylabel in ((ax_t, "tokens/s (all replicas)"), (ax_f, "TFLOP/s per GPU")):
            figures.log_axis(ax, "x", 2)
            ax.set_xlabel("sequence length (tokens)")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="major", alpha=0.3)
        missing = status_counts([r["point"] for r in rows if r["point"]])
        if missing:
            figures.corner_note(ax_t, f"not drawn (gaps): {missing}")
    prov = ctx.provenance([r["point"] for r in rows if r["point"]])
    return figures.save(fig, ctx, "throughput_seq", "Training-step throughput and TFLOP/s per GPU vs sequence length", prov,
                        "Solid: measured; dashed: the cost model's price of the same point.", legend_from=ax_t)


def _scaling_kind(pts):
    tokens = [r["tokens_step"] for r in pts]
    if any(t is None for t in tokens):
        return "per-GPU throughput ratio"
    if max(tokens) == min(tokens):
        return "strong"
    per_gpu = [t / r["gpus"] for t, r in zip(tokens, pts)]
    if max(per_gpu) - min(per_gpu) <= 1e-9 * max(per_gpu):
        return "weak"
    return "mixed work per step"


def _vs_gpus(ctx, rows):
    series = collections.defaultdict(list)
    for r in rows:
        series[(r["model"], r["plan"], r["seq"], r["micro_batch"], r["backend"], r["source"])].append(r)
    series = {k: sorted(v, key=lambda r: r["gpus"]) for k, v in series.items()
              if len({r["gpus"] for r in v if figures.positive(r["tokens_per_s"])}) > 1}
    fig, (ax_t, ax_f, ax_e) = figures.new_figure(1, 3, width=16)
    table = []
    for key, pts in sorted(series.items()):
        kind = _scaling_kind(pts)
        label = _label(pts[0], ("model", "plan", "seq")) + f" ({kind})"
        xs = [r["gpus"] for r in pts]
        _plot(ax_t, xs, [r["tokens_per_s"] for r in pts], key[-1], label)
        _plot(ax_f, xs, [r["tflops_per_gpu"] for r in pts], key[-1], label)
        base = next((r for r in pts if figures.positive(r["tokens_per_s"])), None)
        effs = [(r["tokens_per_s"] / r["gpus"]) / (base["tokens_per_s"] / base["gpus"])
                if base and figures.positive(r["tokens_per_s"]) else None for r in pts]
        _plot(ax_e, xs, effs, key[-1], label)
        table += [[pts[0]["model"], f"`{pts[0]['plan']}`", r["seq"], r["gpus"], fmt(r["tokens_per_s"]),
                   fmt(r["tflops_per_gpu"]), kind, fmt(e * 100 if e is not None else None, "%")] for r, e in zip(pts, effs)]
    if not series:
        for ax in (ax_t, ax_f, ax_e):
            figures.gap(ax, "no series with more than one GPU count (steps results at several `gpus`, "
                            "or seqscale maxseq --at-seq files)")
    else:
        for ax, ylabel in ((ax_t, "tokens/s (all replicas)"), (ax_f, "TFLOP/s per GPU"),
                           (ax_e, "scaling efficiency (per-GPU throughput / at fewest GPUs)")):
            figures.log_axis(ax, "x", 2)
            ax.set_xlabel("GPUs")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="major", alpha=0.3)
        figures.log_axis(ax_t, "y")
        ax_e.axhline(1.0, color="#555555", linewidth=0.8)
        ax_e.set_ylim(bottom=0)
    prov = ctx.provenance([r["point"] for r in rows if r["point"]]) if any(r["point"] for r in rows) \
        else ctx.model_provenance("cost model clusters")
    fig_block = figures.save(fig, ctx, "throughput_gpus", "Throughput, TFLOP/s per GPU and scaling efficiency vs GPU count", prov,
                             "Strong scaling: tokens per step fixed; weak: tokens per step grow with the GPUs.",
                             legend_from=ax_e)
    return fig_block, table


def section(ctx):
    rows = step_rows(ctx) + fastest_rows(ctx)
    blocks = [doc.Heading(2, "Throughput and TFLOP/s per GPU")]
    blocks.append(_vs_seq(ctx, [r for r in rows if r["point"] is not None]))
    fig_block, table = _vs_gpus(ctx, rows)
    blocks.append(fig_block)
    if table:
        blocks.append(doc.Table(["model", "plan", "seq", "GPUs", "tokens/s", "TFLOP/s per GPU", "scaling", "efficiency"], table))
    else:
        blocks.append(doc.Note("No scaling data: throughput vs GPU count needs steps results at two or more GPU counts "
                               "or `seqscale maxseq --at-seq` files."))
    return blocks
