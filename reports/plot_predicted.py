"""Predicted vs measured: memory, time and longest sequence, each a log-log scatter with the
y = x line and the +-10% band, every point labelled by its id, and a table of the errors.

Pairs:
- time and peak memory: a measured ok point and the model's price of the same id (a results
  file written by `seqscale bench --source model`), or the model's own numbers the measured
  point carries (metrics model_step_s, model_peak_bytes);
- longest sequence: the published Figure 9 measurements `seqscale validate` knows against the
  model's prediction for the same model, preset and GPU count.
Model error = predicted / measured - 1; rows beyond 10% are flagged and need a written reason.
"""
import dataclasses
import math

import figures
import report_doc as doc
from plot_maxseq import published_points
from report_data import fmt, median_s, metric

FLAG = 0.10
MAX_LABELS = 25  # beyond this the labels are row numbers of the table


@dataclasses.dataclass
class Pair:
    id: str
    measured: float
    predicted: float
    head: str = ""          # bench/backend of a results point, "" for other pairs
    params: dict = None     # its parameters, for a short label

    @property
    def error(self):
        return self.predicted / self.measured - 1.0


def point_pairs(ctx):
    """(time pairs, memory pairs, table rows) from measured points and the model's prices."""
    measured, model = {}, {}
    for p in ctx.points(status="ok"):
        (model if p.get("source") == "model" else measured)[p["id"]] = p
    times, mems, rows = [], [], []
    for pid, m in sorted(measured.items()):
        pred = model.get(pid)
        t_meas = median_s(m)
        t_pred = median_s(pred) if pred else metric(m, "model_step_s")
        peak_meas = metric(m, "peak_bytes")
        peak_pred = metric(pred, "peak_bytes") if pred else None
        if peak_pred is None:
            peak_pred = metric(m, "model_peak_bytes")
        if t_pred is None and peak_pred is None:
            continue
        t_err = (t_pred / t_meas - 1.0) if (t_pred and t_meas) else None
        p_err = (peak_pred / peak_meas - 1.0) if (peak_pred and peak_meas) else None
        head = f"{m['bench']}/{m['backend']}"
        if t_err is not None:
            times.append(Pair(pid, t_meas, t_pred, head, m.get("params", {})))
        if p_err is not None:
            mems.append(Pair(pid, peak_meas, peak_pred, head, m.get("params", {})))
        off = any(e is not None and abs(e) > FLAG for e in (t_err, p_err))
        rows.append([pid, fmt(t_meas * 1e6 if t_meas else None, " us"), fmt(t_pred * 1e6 if t_pred else None, " us"),
                     fmt(t_err * 100 if t_err is not None else None, "%"),
                     fmt(peak_meas / 2**20 if peak_meas else None), fmt(peak_pred / 2**20 if peak_pred else None),
                     fmt(p_err * 100 if p_err is not None else None, "%"), "> 10%" if off else ""])
    return times, mems, rows


def maxseq_pairs(ctx):
    return [Pair(f"{p['model']}/{p['gpus']}/{p['preset']}", p["published"], p["predicted"])
            for p in published_points(ctx.anchors) if p["published"] > 0 and p["predicted"] > 0]


def short_labels(pairs):
    """A label per pair: a results point as bench/backend and the parameters that differ from
    the other points of the same benchmark in the panel ('layernorm_fwd/cuda rows=1024'); any
    other pair by its id."""
    groups = {}
    for p in pairs:
        if p.params is not None:
            groups.setdefault(p.head, []).append(set((k, str(v)) for k, v in p.params.items()))
    common = {h: set.intersection(*items) if len(items) > 1 else set() for h, items in groups.items()}
    labels = []
    for p in pairs:
        if p.params is None:
            labels.append(p.id)
            continue
        rest = [f"{k}={v}" for k, v in sorted(p.params.items()) if (k, str(v)) not in common[p.head]]
        labels.append(" ".join([p.head] + rest))
    return labels


def _scatter(ax, pairs, scale, unit, what, first_row):
    if not pairs:
        figures.gap(ax, f"no {what} pair: {'run seqscale bench --source model for the measured matrix' if what != 'longest sequence' else 'no published anchors (seqscale validate)'}")
        return
    xs = [p.measured * scale for p in pairs]
    ys = [p.predicted * scale for p in pairs]
    lo, hi = min(xs + ys) / 1.5, max(xs + ys) * 1.5
    line = [lo, hi]
    ax.fill_between(line, [v * (1 - FLAG) for v in line], [v * (1 + FLAG) for v in line], color="#9ecae1", alpha=0.4,
                    label="+-10%")
    ax.plot(line, line, color="black", linewidth=0.8, label="y = x")
    colors = ["#c00000" if abs(p.error) > FLAG else "#1f77b4" for p in pairs]
    ax.scatter(xs, ys, c=colors, s=16, zorder=3)
    labels = short_labels(pairs)
    for i, (label, x, y) in enumerate(zip(labels, xs, ys)):
        text = label if len(pairs) <= MAX_LABELS else f"#{first_row + i}"
        # Labels in the right part of the panel go to the left of their point; all stay inside.
        right = math.log(x / lo) / math.log(hi / lo) > 0.55
        note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(-3 if right else 3, 2),
                           ha="right" if right else "left", fontsize=5, color="#333333")
        note.set_in_layout(False)
        note.set_clip_on(True)
    figures.log_axis(ax, "x")
    figures.log_axis(ax, "y")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured {what} ({unit})")
    ax.set_ylabel(f"predicted {what} ({unit})")
    ax.set_title(f"{what}: {sum(abs(p.error) <= FLAG for p in pairs)} of {len(pairs)} within 10%")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left")


def _error_table(pairs, what, unit, scale, first_row):
    return doc.Table(["#", "id", f"measured {unit}", f"predicted {unit}", "error", "flag"],
                     [[first_row + i, p.id, fmt(p.measured * scale), fmt(p.predicted * scale),
                       fmt(p.error * 100, "%"), "> 10%" if abs(p.error) > FLAG else ""] for i, p in enumerate(pairs)])


def section(ctx):
    times, mems, rows = point_pairs(ctx)
    seqs = maxseq_pairs(ctx)
    blocks = [doc.Heading(2, "Predicted vs measured")]
    fig, (ax_m, ax_t, ax_s) = figures.new_figure(1, 3, width=17, row_height=5.6)
    _scatter(ax_m, mems, 1 / 2**20, "MiB", "peak memory", 1)
    _scatter(ax_t, times, 1e6, "us", "time", 1)
    _scatter(ax_s, seqs, 1.0, "K tokens", "longest sequence", 1)
    used = [p for p in ctx.points(status="ok") if p["id"] in {q.id for q in times + mems}]
    prov = ctx.provenance(used) if used else ctx.model_provenance("published anchors")
    blocks.append(figures.save(fig, ctx, "predicted_vs_measured", "Predicted vs measured: memory, time, longest sequence",
                               prov, "Band: +-10%; red points are outside it. Longest sequence: published DS4Sci Figure 9 "
                                     "measurements against the model."))
    blocks.append(doc.Para("Model error = predicted / measured - 1; rows beyond 10% need a written reason."))
    if rows:
        blocks.append(doc.Table(["point", "measured", "predicted", "time error", "measured peak MiB",
                                 "predicted peak MiB", "peak error", "flag"], rows))
    else:
        blocks.append(doc.Note("No measured point has a prediction: add the model's file for the same matrix "
                               "(`seqscale bench --source model --cluster C`, same `--filter`)."))
    for pairs, what, unit, scale in ((mems, "peak memory", "MiB", 1 / 2**20), (times, "time", "us", 1e6)):
        if len(pairs) > MAX_LABELS:
            blocks.append(doc.Heading(3, f"{what}: labels by row"))
            blocks.append(_error_table(pairs, what, unit, scale, 1))
    if seqs:
        blocks.append(doc.Heading(3, "Longest sequence: published vs predicted"))
        blocks.append(_error_table(seqs, "longest sequence", "K tokens", 1.0, 1))
    return blocks
