"""The runs, then one figure and one table per benchmark (suite/bench).

Figure: the numeric parameter with the most values on x; achieved GB/s or TFLOP/s (whichever
the benchmark declares more of) or bus bandwidth on y; one line per remaining parameter
combination, backend and source; a second panel with the peak memory. A point that is not ok
(oom, failed, skipped) is a gap in its line and counted in the note, never drawn as a zero.
Table: every point with its status, its check against the CPU reference, the timer, the
median and spread, the noise, GB/s, TFLOP/s and the peak.
"""
import collections
import json

import figures
import report_doc as doc
from report_data import fmt, median_s, metric, param_text, status_counts


def x_axis(points):
    """The numeric parameter with the most distinct values (None if there is none)."""
    values = collections.defaultdict(set)
    for p in points:
        for k, v in p.get("params", {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k].add(v)
    best = [k for k, v in sorted(values.items(), key=lambda kv: (-len(kv[1]), kv[0])) if len(v) > 1]
    return best[0] if best else None


def metric_of(points):
    """(metric name, axis label) the benchmark is best read by."""
    if any("busbw_GBps" in p.get("metrics", {}) for p in points):
        return "busbw_GBps", "bus bandwidth (GB/s)"
    flops = sum(p.get("declared", {}).get("flops", 0) for p in points)
    byts = sum(p.get("declared", {}).get("bytes", 0) for p in points)
    # Arithmetic intensity above ~50 FLOP/B means compute-bound on every GPU we target.
    if byts > 0 and flops / byts > 50:
        return "TFLOPs", "achieved TFLOP/s (declared FLOPs / median time)"
    if flops > 0 and byts == 0:
        return "TFLOPs", "achieved TFLOP/s (declared FLOPs / median time)"
    if byts > 0:
        return "GBps", "achieved GB/s (declared bytes / median time)"
    return "median_s", "median time (s)"


def value(p, name):
    """The plotted value of a point, None when it has none (not ok, not timed)."""
    if p.get("status") != "ok":
        return None
    return median_s(p) if name == "median_s" else metric(p, name)


def check_cell(check):
    """The point's check against its CPU reference: ok or FAILED with the largest error."""
    if not check:
        return "-"
    verdict = "ok" if check["ok"] else "**FAILED**"
    cell = f"{verdict} (max abs err {check['max_abs_err']:.2g})"
    if check.get("scope"):
        cell += f"; {check['scope'][:40]}"
    return cell


def run_blocks(ctx):
    blocks = []
    for run in ctx.runs:
        info = run.info
        counts = collections.Counter(p.get("status") for p in run.points)
        blocks += [doc.Heading(3, f"Run {run.index}: `{run.path}`"),
                   doc.Bullets([f"device: {run.device}  driver: {info.get('driver') or '-'}  "
                                f"CUDA runtime: {info.get('cuda_runtime') or '-'}  NCCL: {info.get('nccl') or '-'}",
                                f"commit: `{info.get('git_commit', '')}`  host: {info.get('host', '')}  "
                                f"started: {info.get('started_utc', '')}",
                                f"command: `{info.get('command_line', '')}`",
                                "points: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")])]
        if not run.points:
            blocks.append(doc.Note(f"`{run.path}` holds no points."))
    return blocks


def bench_figure(ctx, name, points):
    """The figure of one benchmark, or a gap figure when none of its points is ok."""
    stem = name.replace("/", "_")
    timed = [p for p in points if p.get("status") == "ok"]
    xa = x_axis(points)
    metric_name, ylabel = metric_of(timed or points)
    fig, (ax, axm) = figures.new_figure(1, 2)
    series = collections.defaultdict(list)
    for p in points:
        series[(p["backend"], p.get("source", "measured"), param_text(p.get("params", {}), skip=(xa,)))].append(p)
    drawn_v = drawn_m = False
    all_v, all_m = [], []
    for (backend, source, rest), pts in sorted(series.items()):
        pts = sorted(pts, key=lambda p: p["params"].get(xa, 0)) if xa else pts
        xs = [p["params"][xa] for p in pts] if xa else list(range(len(pts)))
        ys = [value(p, metric_name) for p in pts]
        mem = [metric(p, "peak_bytes") if p.get("status") == "ok" else None for p in pts]
        label = f"{backend}/{source} {rest}".strip()
        all_v += ys
        all_m += mem
        style = "--" if source == "model" else "-"
        if any(figures.positive(y) for y in ys):
            ax.plot(xs, [y if figures.positive(y) else figures.NAN for y in ys], marker="o", linestyle=style, label=label)
            drawn_v = True
        if any(figures.positive(m) for m in mem):
            axm.plot(xs, [m / 2**20 if figures.positive(m) else figures.NAN for m in mem], marker="s",
                     linestyle=style, label=label)
            drawn_m = True
    missing = status_counts(points)
    for a, drawn, what in ((ax, drawn_v, "throughput"), (axm, drawn_m, "peak memory")):
        if not drawn:
            figures.gap(a, f"no ok point with a {what}" + (f" ({missing})" if missing else ""))
            continue
        a.set_xlabel(xa or "point")
        if xa:
            figures.log_axis(a, "x", 2)
        a.grid(True, alpha=0.3)
        if missing:
            figures.corner_note(a, f"gaps (not drawn): {missing}")
    if drawn_v:
        ax.set_ylabel(ylabel)
        figures.log_if_wide(ax, all_v)
    if drawn_m:
        axm.set_ylabel("peak memory (MiB, allocator high-water mark)")
        figures.log_if_wide(axm, all_m)
    ax.set_title(f"{name}: throughput")
    axm.set_title(f"{name}: peak memory")
    return figures.save(fig, ctx, stem, f"{name}", ctx.provenance(points),
                        "Solid: measured; dashed: the cost model (source: model).", legend_from=ax if drawn_v else axm)


def bench_table(points, many_runs):
    rows = []
    for p in sorted(points, key=lambda p: (p["backend"], p.get("source", ""), json.dumps(p.get("params", {}), sort_keys=True))):
        st = p.get("stats", {})
        status = p["status"] + (f" ({p['reason'][:60]})" if p.get("reason") else "")
        cells = [p["_run"] if many_runs else "", p["backend"], param_text(p.get("params", {})).replace(",", ", "), status,
                 check_cell(p.get("check")), p.get("timing") or "-"]
        if median_s(p):
            cells += [fmt(st["median_s"] * 1e6, " us"), f"{st['min_s'] * 1e6:.4g}..{st['max_s'] * 1e6:.4g} us",
                      f"{st.get('rel_noise', 0) * 100:.2f}%", fmt(metric(p, "GBps")), fmt(metric(p, "TFLOPs")),
                      fmt(metric(p, "peak_bytes") / 2**20 if metric(p, "peak_bytes") is not None else None)]
        else:
            cells += [""] * 6
        rows.append(cells)
    return doc.Table(["run", "backend", "params", "status", "check", "timer", "median", "min..max", "noise", "GB/s",
                      "TFLOP/s", "peak MiB"], rows)


def section(ctx):
    blocks = [doc.Heading(2, "Runs")] + run_blocks(ctx)
    groups = collections.defaultdict(list)
    for p in ctx.points():
        groups[(p["suite"], p["bench"])].append(p)
    blocks.append(doc.Heading(2, "Benchmarks"))
    if not groups:
        blocks.append(doc.Note("No benchmark points in the results given."))
    for (suite, bench), pts in sorted(groups.items()):
        blocks.append(doc.Heading(3, f"{suite}/{bench}"))
        blocks.append(bench_figure(ctx, f"{suite}/{bench}", pts))
        blocks.append(bench_table(pts, len(ctx.runs) > 1))
    return blocks
