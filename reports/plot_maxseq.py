"""Max sequence vs GPU count (the DeepSpeed4Science Figure 9 view), and the measured maximum.

One panel per model: the cost model's longest sequence that fits per framework preset
(`seqscale maxseq --json` files; where a preset has none, the predictions `seqscale validate`
makes for the published configurations, dashed), with the published points overlaid as stars
and the model's error written beside each one (red when a claimed row is outside its
tolerance, grey when the row is not claimed). A GPU count where nothing fits is a gap in the
line and a note, never a zero on the log axis. Below it, the hardware bisection's rows
(`seqscale bench --maxseq`, measured_max_seq.json) with the model's answer for the same grid.
"""
import collections
import re

import figures
import report_doc as doc
from report_data import fmt_pct

STEM = "scaling_maxseq"
_ROW = re.compile(r"^(\S+) (\d+) GPUs (\S+)$")


def published_points(anchors):
    """validate's Figure 9 rows as dicts: model, gpus, preset, published/predicted K tokens."""
    out = []
    for row in anchors:
        m = _ROW.match(row.get("name", "")) if row.get("group") == "figure9" else None
        if m:
            out.append(dict(row, model=m.group(1), gpus=int(m.group(2)), preset=m.group(3)))
    return out


def _status(row):
    """validate's verdict on one published row."""
    if not row.get("claimed", True):
        return "not claimed"
    if not row.get("ok", True):
        return "**outside tolerance**"
    return "ok (grid cell)" if row.get("in_grid_cell") else "ok"


def _series(entries):
    series = collections.defaultdict(list)
    for e in entries:
        series[(e["model"], e["cluster"], e["preset"])].append(e)
    for pts in series.values():
        pts.sort(key=lambda e: e["gpus"])
    return series


def _draw_model(ax, model, series, published, colors):
    """One model's panel; returns notes about gaps."""
    notes = []
    drawn_presets = set()
    for (m, cluster, preset), pts in sorted(series.items()):
        if m != model:
            continue
        # NaN breaks the line where nothing fits: a gap, not a zero.
        ys = [e["max_seq"] / 1024 if e["max_seq"] > 0 else figures.NAN for e in pts]
        ax.plot([e["gpus"] for e in pts], ys, marker="o", color=colors[preset], label=f"{preset} ({cluster})")
        drawn_presets.add(preset)
        notes += [f"{preset} on {cluster}: nothing fits at {e['gpus']} GPUs" for e in pts if e["max_seq"] <= 0]
    anchors = [p for p in published if p["model"] == model]
    by_preset = collections.defaultdict(list)
    for p in anchors:
        by_preset[p["preset"]].append(p)
    for preset, pts in sorted(by_preset.items()):
        pts.sort(key=lambda p: p["gpus"])
        if preset not in drawn_presets:
            ys = [p["predicted"] if p["predicted"] > 0 else figures.NAN for p in pts]
            ax.plot([p["gpus"] for p in pts], ys, linestyle="--", marker=".", color=colors[preset],
                    label=f"{preset} (validate, dgx-a100-40g)")
            notes += [f"{preset}: nothing fits at {p['gpus']} GPUs (model)" for p in pts if p["predicted"] <= 0]
        for p in pts:
            if p["published"] <= 0:
                continue
            ax.scatter([p["gpus"]], [p["published"]], marker="*", s=110, color=colors[preset],
                       edgecolors="black", linewidths=0.6, zorder=5)
            if p["predicted"] > 0:
                ax.plot([p["gpus"], p["gpus"]], [p["published"], p["predicted"]], color=colors[preset],
                        linestyle=":", linewidth=1)
            label = "grid cell" if p.get("in_grid_cell") and p.get("ok") else fmt_pct(p.get("error"))
            color = "#888888" if not p.get("claimed", True) else ("#c00000" if not p.get("ok", True) else "#222222")
            ax.annotate(label + ("" if p.get("claimed", True) else " (not claimed)"), (p["gpus"], p["published"]),
                        textcoords="offset points", xytext=(6, -3), fontsize=6, color=color)
    ax.scatter([], [], marker="*", s=80, color="white", edgecolors="black", label="published (DS4Sci Fig. 9), error = model")
    figures.log_axis(ax, "x", 2)
    figures.log_axis(ax, "y", 2)
    ax.set_xlabel("GPUs")
    ax.set_ylabel("longest sequence that fits (K tokens)")
    ax.set_title(model)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best")
    if notes:
        figures.corner_note(ax, "gaps: " + "; ".join(notes[:4]) + (" ..." if len(notes) > 4 else ""))
    return notes


def section(ctx):
    series = _series(ctx.scaling)
    published = published_points(ctx.anchors)
    models = sorted({k[0] for k in series} | {p["model"] for p in published})
    presets = sorted({k[2] for k in series} | {p["preset"] for p in published})
    colors = {p: figures.color_for(p, presets) for p in presets}
    blocks = [doc.Heading(2, "Scaling (cost model): max sequence vs GPU count")]
    ncols = max(1, min(3, len(models)))
    nrows = max(1, -(-len(models) // ncols))
    fig, axes = figures.new_figure(nrows, ncols, width=6.0 * ncols if models else 8.0)
    notes = []
    for ax, model in zip(axes, models):
        notes += _draw_model(ax, model, series, published, colors)
    if not models:
        figures.gap(axes[0], "no seqscale maxseq --json files (--scaling) and no published anchors")
    for ax in axes[len(models) or 1:]:
        ax.set_visible(False)
    clusters = sorted({k[1] for k in series}) or ["dgx-a100-40g"]
    device = ", ".join(clusters)
    blocks.append(figures.save(fig, ctx, STEM, "Max sequence length vs GPU count (predicted; published points overlaid)",
                               ctx.model_provenance(device),
                               "Lines: the cost model's longest sequence per preset. Stars: published (Song et al. "
                               "2023, Figure 9) with the model's error."))
    if not models:
        blocks.append(doc.Note("No max-sequence data: pass `--scaling` files written by `seqscale maxseq --json`."))
    for n in notes:
        blocks.append(doc.Note(n))
    if series:
        rows = [[m, c, p, e["gpus"], f"{e['max_seq']:,}" if e["max_seq"] > 0 else "nothing fits",
                 e.get("binding") or "", f"`{e['plan']}`" if e.get("plan") else ""]
                for (m, c, p), pts in sorted(series.items()) for e in pts]
        blocks.append(doc.Table(["model", "cluster", "preset", "GPUs", "max sequence", "binding", "plan"], rows))
    if published:
        rows = [[p["model"], p["preset"], p["gpus"], f"{p['published']:g}", f"{p['predicted']:g}", fmt_pct(p.get("error")),
                 _status(p), p.get("note", "")]
                for p in sorted(published, key=lambda p: (p["model"], p["preset"], p["gpus"]))]
        blocks.append(doc.Para("Published points (`seqscale validate`, DGX A100-40GB), in K tokens:"))
        blocks.append(doc.Table(["model", "preset", "GPUs", "published", "predicted", "error", "status", "note"], rows))
    blocks += _measured_blocks(ctx.measured_max_seq)
    return blocks


def _measured_blocks(rows):
    """The hardware bisection (`seqscale bench --maxseq`, measured_max_seq.json) beside the
    model's answer for the same grid; a missing value is said, never drawn as 0."""
    if not rows:
        return []
    table = []
    for r in rows:
        group = ", ".join(f"{k}={v}" for k, v in sorted((r.get("group") or {}).items()))
        m, p = r["measured_max"], r["predicted_max"]
        err = fmt_pct((p - m) / m) if isinstance(m, int) and isinstance(p, int) and m > 0 else ""
        table.append([r["bench"], r["backend"], r["axis"], group, f"{m:,}" if isinstance(m, int) else "none fits",
                      f"{p:,}" if isinstance(p, int) else "-", err, r.get("first_infeasible_reason", "")])
    return [doc.Heading(3, "Measured max sequence (bisection on the hardware)"),
            doc.Para("`seqscale bench --maxseq AXIS` (measured_max_seq.json): the largest value of the axis that "
                     "ran, and the model's answer for the same grid (with `--cluster`; '-': not priced, or "
                     "nothing fits in the model)."),
            doc.Table(["bench", "backend", "axis", "other parameters", "measured", "predicted", "error",
                       "first infeasible"], table)]
