"""Matplotlib helpers every figure shares: a figure with its provenance line, a gap drawn as
a note (never as a zero), and saving each figure as PNG and SVG.
"""
import math
import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

import report_doc  # noqa: E402

# SVG text stays text (small, searchable); fixed hash salt and no date: reruns are identical.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "seqscale", "font.size": 9,
                            "axes.titlesize": 10, "legend.fontsize": 7})

PALETTE = plt.get_cmap("tab10").colors
NAN = float("nan")


def color_for(key, keys):
    """A stable colour per key among sorted keys."""
    return PALETTE[sorted(keys).index(key) % len(PALETTE)]


def new_figure(nrows=1, ncols=1, width=13.0, row_height=4.8):
    """A figure and a flat list of its axes."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows + 0.4), squeeze=False)
    return fig, [ax for row in axes for ax in row]


def gap(ax, message):
    """An axis with no data: says why in words, draws nothing that could read as a value."""
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_linestyle(":")
        side.set_color("#999999")
    ax.text(0.5, 0.5, "no data\n" + message, ha="center", va="center", transform=ax.transAxes,
            fontsize=9, color="#555555", wrap=True)


def corner_note(ax, message):
    """A note under an axis that has data (which points are missing and why), outside the
    plotting area so it never hides a point; wrapped to the axis width."""
    width_in = ax.get_position().width * ax.figure.get_size_inches()[0]
    text = "\n".join(w for line in message.split("\n") for w in textwrap.wrap(line, max(30, int(width_in * 15))))
    ax.annotate(text, xy=(0.0, 0.0), xycoords="axes fraction", xytext=(0, -40), textcoords="offset points",
                ha="left", va="top", fontsize=7, color="#7a5a00",
                bbox={"facecolor": "#fff8e0", "edgecolor": "#d9a400", "alpha": 0.9})


def finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def positive(v):
    return finite(v) and v > 0


def human(v, _pos=None):
    """Tick label without mathtext: 1024 -> 1K, 2**30 -> 1G, 0.5 -> 0.5, 1e4 -> 10000."""
    if v <= 0:
        return ""
    for div, suffix in ((2**40, "T"), (2**30, "G"), (2**20, "M"), (2**10, "K")):
        if v >= div and (v / div).is_integer():
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def log_axis(ax, axis="x", base=10):
    """A log axis with plain tick labels and no minor ticks (mathtext and minor ticks are
    most of the cost of drawing a figure, and 2^20 reads worse than 1M)."""
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=base)
    target = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.dataLim.intervalx if axis == "x" else ax.dataLim.intervaly
    if base == 10 and positive(lo) and positive(hi) and hi / lo < 300:
        # Under ~2.5 decades of data: 1-2-5 ticks, or the axis would show one label or none.
        target.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(human))
    target.set_minor_locator(matplotlib.ticker.NullLocator())


def log_if_wide(ax, values, axis="y"):
    """Log scale when the positive values span more than 50x (one line must not flatten the rest)."""
    vals = [v for v in values if positive(v)]
    if vals and max(vals) / min(vals) > 50:
        log_axis(ax, axis)


def save(fig, ctx, stem, title, provenance, caption="", legend_from=None):
    """Titles the figure, stamps its provenance at the bottom, writes stem.png and stem.svg,
    and returns the Figure block that shows it. legend_from: an axis whose legend goes below
    the panels, for figures with many series."""
    fig.suptitle(title, fontsize=11)
    fig.text(0.005, 0.005, provenance.text(), fontsize=7, color="#333333", ha="left", va="bottom")
    height = fig.get_size_inches()[1]
    bottom = 0.25 / height
    handles, labels = legend_from.get_legend_handles_labels() if legend_from is not None else ([], [])
    if handles:
        ncol = 2 if max(len(label) for label in labels) > 60 else 3
        rows = -(-len(labels) // ncol)
        fig.legend(handles, labels, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, bottom), fontsize=7, frameon=False)
        bottom += (0.05 + 0.16 * rows) / height
    fig.tight_layout(rect=(0, bottom, 1, 1 - 0.35 / height))
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(ctx.out_dir, f"{stem}.{ext}"), dpi=100, metadata={"Date": None} if ext == "svg" else None)
    plt.close(fig)
    return report_doc.Figure(stem=stem, alt=title, caption=caption)
