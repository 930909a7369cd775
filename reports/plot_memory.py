"""Peak memory per GPU vs sequence length or MSA depth, naive against fused attention
(the DeepSpeed4Science Figure 7 view).

Data: the memory sweeps seqscale report priced with the cost model (reports/sweeps/*.json, or
--memory-sweep): at each axis value two stacked bars, naive (plain) and fused (hatched), one
segment per memory term in the model's order, the device's memory as a line, and the binding
(largest) term named above each bar. A bar far above the device's memory is cut at the top of
the axis with its total written there; a point the plan rejects is a gap with its reason.
"""
import figures
import report_doc as doc
from report_data import fmt

_AXIS_LABEL = {"seq": "sequence length (tokens; N_res for an Evoformer)", "msa_depth": "MSA depth (N_seq)"}
_VARIANT_STYLE = {0: {"hatch": None, "offset": -0.2}, 1: {"hatch": "///", "offset": 0.2}}


def _tick(v, axis="seq"):
    """2048 -> 2K for sequence lengths; MSA depths stay plain numbers."""
    return f"{v // 1024}K" if axis == "seq" and v >= 1024 and v % 1024 == 0 else str(v)


def _terms_in_use(points):
    """Memory terms that are non-zero somewhere in the sweep, in the model's order."""
    order, used = [], set()
    for p in points:
        for t in p.get("terms", []):
            if t["term"] not in order:
                order.append(t["term"])
            if t["bytes"] > 0:
                used.add(t["term"])
    return [t for t in order if t in used]


def _draw_sweep(ax, sweep):
    """Stacked bars for one sweep; returns the notes about gaps."""
    pts = sweep["points"]
    xs = sorted({p["x"] for p in pts})
    variants = []
    for p in pts:
        if p["variant"] not in variants:
            variants.append(p["variant"])
    terms = _terms_in_use(pts)
    palette = figures.plt.get_cmap("tab10" if len(terms) <= 10 else "tab20").colors
    colors = {t: palette[i % len(palette)] for i, t in enumerate(terms)}
    cap_gb = sweep["capacity_bytes"] / 1e9
    fitting = [p["peak_bytes"] / 1e9 for p in pts if "peak_bytes" in p and p["peak_bytes"] / 1e9 <= cap_gb * 1.5]
    top = max([cap_gb * 1.35] + [v * 1.15 for v in fitting])
    notes = []
    for vi, variant in enumerate(variants):
        style = _VARIANT_STYLE.get(vi, {"hatch": "..", "offset": 0.0})
        for xi, x in enumerate(xs):
            p = next((q for q in pts if q["x"] == x and q["variant"] == variant), None)
            pos = xi + style["offset"]
            if p is None or "error" in p:
                why = (p or {}).get("error", "not priced")
                notes.append(f"{variant} at {_tick(x, sweep['axis'])}: {why}")
                ax.text(pos, top * 0.02, "n/a", ha="center", fontsize=6, color="#7a5a00", rotation=90)
                continue
            bottom = 0.0
            for t in p["terms"]:
                gb = t["bytes"] / 1e9
                if gb <= 0:
                    continue
                ax.bar(pos, gb, 0.38, bottom=bottom, color=colors[t["term"]], hatch=style["hatch"],
                       edgecolor="white" if style["hatch"] is None else "#333333", linewidth=0.3)
                bottom += gb
            total = p["peak_bytes"] / 1e9
            label = p["binding"].replace("_", " ")
            if total > top:
                ax.annotate(f"{total:,.0f} GB\n{label}", (pos, top), ha="center", va="top", fontsize=6,
                            xytext=(0, -3), textcoords="offset points", color="#c00000",
                            bbox={"facecolor": "white", "edgecolor": "#c00000", "pad": 1.5})
            else:
                ax.text(pos, total + top * 0.01, label, ha="center", va="bottom", fontsize=5.5, rotation=90)
    ax.axhline(cap_gb, color="#c00000", linestyle="--", linewidth=1)
    ax.text(len(xs) - 0.5, cap_gb, f" GPU memory {cap_gb:g} GB", color="#c00000", fontsize=7, va="bottom", ha="right")
    ax.set_ylim(0, top)
    ax.set_xticks(range(len(xs)), [_tick(x, sweep["axis"]) for x in xs])
    ax.set_xlabel(_AXIS_LABEL.get(sweep["axis"], sweep["axis"]))
    ax.set_ylabel("peak memory per GPU (GB, predicted)")
    ax.grid(True, axis="y", alpha=0.3)
    handles = [figures.plt.Rectangle((0, 0), 1, 1, color=colors[t]) for t in terms]
    labels = [t.replace("_", " ") for t in terms]
    for vi, variant in enumerate(variants):
        style = _VARIANT_STYLE.get(vi, {"hatch": "..", "offset": 0.0})
        handles.append(figures.plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="#333333", hatch=style["hatch"]))
        labels.append(f"{variant} attention ({'left' if style['offset'] < 0 else 'right'} bar)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="memory term")
    if notes:
        figures.corner_note(ax, "gaps: " + "; ".join(notes[:3]) + (" ..." if len(notes) > 3 else ""))
    return notes


def _table(sweep):
    rows = []
    for p in sorted(sweep["points"], key=lambda p: (p["x"], p["variant"])):
        if "error" in p:
            rows.append([_tick(p["x"], sweep["axis"]), p["variant"], "", "", "", f"not priced: {p['error']}"])
            continue
        rows.append([_tick(p["x"], sweep["axis"]), p["variant"], fmt(p["peak_bytes"] / 1e9), "yes" if p["fits"] else "**no**",
                     p["binding"], f"`{p['plan']}`"])
    return doc.Table([sweep["axis"], "attention", "peak GB", "fits", "binding term", "plan"], rows)


def section(ctx):
    blocks = [doc.Heading(2, "Peak memory: naive vs fused attention (cost model)")]
    if not ctx.sweeps:
        fig, axes = figures.new_figure(1, 1, width=8)
        figures.gap(axes[0], "no memory sweep priced (seqscale report prices reports/sweeps/*.json by default)")
        blocks.append(figures.save(fig, ctx, "memory", "Peak memory vs sequence length: naive vs fused attention",
                                   ctx.model_provenance("none")))
        blocks.append(doc.Note("No memory sweep: run `seqscale report` (it prices reports/sweeps/*.json) or pass "
                               "`--memory-sweep FILE`."))
        return blocks
    for sweep in ctx.sweeps:
        fig, axes = figures.new_figure(1, 1, width=12, row_height=5.2)
        notes = _draw_sweep(axes[0], sweep)
        axis = "MSA depth" if sweep["axis"] == "msa_depth" else "sequence length"
        title = (f"{sweep['model']} on {sweep['gpus']} x {sweep['gpu']} ({sweep['cluster']}): peak memory per GPU "
                 f"vs {axis}, stacked by term")
        device = f"{sweep['gpu']} ({sweep['cluster']})"
        blocks.append(doc.Heading(3, f"{sweep['name']}: {sweep['model']} vs {axis}"))
        if sweep.get("description"):
            blocks.append(doc.Para(sweep["description"]))
        blocks.append(figures.save(fig, ctx, f"memory_{sweep['name']}", title, ctx.model_provenance(device),
                                   "Left bar naive (materialized scores), right bar fused; the binding term is "
                                   "written above each bar."))
        blocks += [doc.Note(n) for n in notes]
        blocks.append(_table(sweep))
    return blocks
