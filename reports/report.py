#!/usr/bin/python3
"""Render seqscale results (schema seqscale.results/1) as PNG plots and a Markdown index.

Usage: report.py --out DIR [--scaling maxseq.json ...] [results.json ...]
Runs on Debian's python3 + python3-matplotlib. Reads results only; never writes into results/.
One figure per (suite, bench): the numeric axis with the most values on x, achieved GB/s or
TFLOP/s (whichever the benchmark declares more of, against its floor) on y, one line per
remaining parameter combination and backend. A second panel shows peak memory.
--scaling files (seqscale maxseq --json) add the cost model's longest sequence per GPU
count, one line per model, cluster and preset, with the plan and binding term per point.
"""
import argparse
import collections
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCHEMA = "seqscale.results/1"


def load(path):
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != SCHEMA:
        sys.exit(f"{path}: field 'schema' is {doc.get('schema')!r}, expected {SCHEMA!r}")
    return doc


def x_axis(points):
    """The numeric parameter with the most distinct values (None if there is none)."""
    values = collections.defaultdict(set)
    for p in points:
        for k, v in p["params"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k].add(v)
    best = [k for k, v in sorted(values.items(), key=lambda kv: -len(kv[1])) if len(v) > 1]
    return best[0] if best else None


def metric_of(points):
    flops = sum(p.get("declared", {}).get("flops", 0) for p in points)
    byts = sum(p.get("declared", {}).get("bytes", 0) for p in points)
    if "busbw_GBps" in points[0].get("metrics", {}):
        return "busbw_GBps", "bus bandwidth (GB/s)"
    # Arithmetic intensity above ~50 FLOP/B means compute-bound on every GPU we target.
    if byts > 0 and flops / byts > 50:
        return "TFLOPs", "achieved TFLOP/s (declared FLOPs / median time)"
    if byts > 0:
        return "GBps", "achieved GB/s (declared bytes / median time)"
    return "median_s", "median time (s)"


def value(p, metric):
    if metric == "median_s":
        return p["stats"]["median_s"]
    return p.get("metrics", {}).get(metric)


def plot_bench(name, points, out_dir, label_prefix):
    ok = [p for p in points if p["status"] == "ok"]
    if not ok:
        return None
    xa = x_axis(ok)
    metric, ylabel = metric_of(ok)
    series = collections.defaultdict(list)
    for p in ok:
        rest = ",".join(f"{k}={v}" for k, v in sorted(p["params"].items()) if k != xa)
        series[(p["backend"], p.get("source", "measured"), rest)].append(p)
    fig, (ax, axm) = plt.subplots(1, 2, figsize=(13, 4.8))
    for (backend, source, rest), pts in sorted(series.items()):
        label = f"{label_prefix}{backend}/{source} {rest}".strip()
        if xa:
            pts = sorted(pts, key=lambda p: p["params"][xa])
            xs = [p["params"][xa] for p in pts]
        else:
            xs = list(range(len(pts)))
        ys = [value(p, metric) for p in pts]
        ax.plot(xs, ys, marker="o", label=label)
        mem = [p.get("metrics", {}).get("peak_bytes", 0) / 2**20 for p in pts]
        axm.plot(xs, mem, marker="s", label=label)
    for a in (ax, axm):
        a.set_xlabel(xa or "point")
        if xa:
            a.set_xscale("log", base=2)
        a.grid(True, alpha=0.3)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{name}: throughput")
    axm.set_ylabel("peak memory (MiB, allocator high-water mark)")
    axm.set_title(f"{name}: peak memory")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fname = f"{name.replace('/', '_')}.png"
    fig.savefig(os.path.join(out_dir, fname), dpi=110)
    plt.close(fig)
    return fname


def predicted_vs_measured(docs, flag=0.10):
    """One row per point id that some run measured and another priced (source: model), and
    per measured point that carries the model's own peak (metric model_peak_bytes): time and
    peak, the model's error against the measurement, flagged beyond 10% (issue 7: every
    such point gets an explanation)."""
    measured, model = {}, {}
    for _, doc in docs:
        for p in doc["points"]:
            if p["status"] != "ok":
                continue
            (model if p.get("source") == "model" else measured)[p["id"]] = p
    rows = []
    for pid, m in sorted(measured.items()):
        pred = model.get(pid)
        t_meas = m["stats"]["median_s"]
        t_pred = pred["stats"]["median_s"] if pred else None
        peak_meas = m.get("metrics", {}).get("peak_bytes")
        peak_pred = (pred or {}).get("metrics", {}).get("peak_bytes", m.get("metrics", {}).get("model_peak_bytes"))
        if t_pred is None and peak_pred is None:
            continue
        t_err = (t_pred / t_meas - 1.0) if (t_pred and t_meas) else None
        p_err = (peak_pred / peak_meas - 1.0) if (peak_pred and peak_meas) else None
        off = any(e is not None and abs(e) > flag for e in (t_err, p_err))
        rows.append(f"| {pid} | {fmt(t_meas * 1e6, ' us')} | {fmt(t_pred * 1e6 if t_pred else None, ' us')} | "
                    f"{fmt(t_err * 100 if t_err is not None else None, '%')} | "
                    f"{fmt(peak_meas / 2**20 if peak_meas else None)} | {fmt(peak_pred / 2**20 if peak_pred else None)} | "
                    f"{fmt(p_err * 100 if p_err is not None else None, '%')} | {'> 10%' if off else ''} |")
    if not rows:
        return []
    return ["## Predicted vs measured", "",
            "Model error = predicted / measured - 1; rows beyond 10% need a written reason.", "",
            "| point | measured | predicted | time error | measured peak MiB | predicted peak MiB | peak error | flag |",
            "|---|---|---|---|---|---|---|---|"] + rows + [""]


def scaling_section(paths, out_dir):
    """The cost model's maximum sequence length against the GPU count (seqscale maxseq)."""
    series = collections.defaultdict(list)
    for path in paths:
        with open(path) as f:
            for e in json.load(f):
                series[(e["model"], e["cluster"], e["preset"])].append(e)
    fig, ax = plt.subplots(figsize=(8, 5))
    for (model, cluster, preset), pts in sorted(series.items()):
        pts.sort(key=lambda e: e["gpus"])
        fit = [e for e in pts if e["max_seq"] > 0]  # nothing fits: in the table, not on a log axis
        ax.plot([e["gpus"] for e in fit], [e["max_seq"] / 1024 for e in fit], marker="o",
                label=f"{model} / {cluster} / {preset}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("GPUs")
    ax.set_ylabel("longest sequence that fits (K tokens, cost model)")
    ax.set_title("max sequence length vs GPU count (predicted)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fname = "scaling_maxseq.png"
    fig.savefig(os.path.join(out_dir, fname), dpi=110)
    plt.close(fig)
    lines = ["## Scaling (cost model)", "", f"![max sequence]({fname})", "",
             "| model | cluster | preset | GPUs | max sequence | binding | plan |", "|---|---|---|---|---|---|---|"]
    for (model, cluster, preset), pts in sorted(series.items()):
        for e in pts:
            lines.append(f"| {model} | {cluster} | {preset} | {e['gpus']} | {e['max_seq']:,} | "
                         f"{e.get('binding') or ''} | `{e.get('plan') or 'nothing fits'}` |")
    return lines + [""]


def fmt(x, unit=""):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4g}{unit}"
    return f"{x}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--scaling", action="append", default=[])
    ap.add_argument("results", nargs="*")
    args = ap.parse_args()
    if not args.results and not args.scaling:
        sys.exit("report.py: give results files or --scaling files")
    os.makedirs(args.out, exist_ok=True)
    docs = [(path, load(path)) for path in args.results]
    many = len(docs) > 1
    lines = ["# seqscale report", ""]
    if args.scaling:
        lines += scaling_section(args.scaling, args.out)
    groups = collections.defaultdict(list)
    for i, (path, doc) in enumerate(docs):
        run = doc["run"]
        lines += [f"## Run {i}: `{path}`", "",
                  f"- device: {run['device']}  driver: {run.get('driver') or '-'}  "
                  f"CUDA runtime: {run.get('cuda_runtime') or '-'}  NCCL: {run.get('nccl') or '-'}",
                  f"- commit: `{run['git_commit']}`  host: {run['host']}  started: {run['started_utc']}",
                  f"- command: `{run['command_line']}`", ""]
        counts = collections.Counter(p["status"] for p in doc["points"])
        lines.append("- points: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        lines.append("")
        for p in doc["points"]:
            groups[(p["suite"], p["bench"])].append(dict(p, _run=i))
    if groups:
        lines += ["## Benchmarks", ""]
    for (suite, bench), pts in sorted(groups.items()):
        fname = plot_bench(f"{suite}/{bench}", pts, args.out, "")
        lines += [f"### {suite}/{bench}", ""]
        if fname:
            lines += [f"![{bench}]({fname})", ""]
        lines += ["| run | backend | params | status | check | timer | median | min..max | noise | GB/s | TFLOP/s | peak MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in sorted(pts, key=lambda p: (p["backend"], json.dumps(p["params"], sort_keys=True))):
            st = p["stats"]
            m = p.get("metrics", {})
            params = ", ".join(f"{k}={v}" for k, v in sorted(p["params"].items()))
            status = p["status"] + (f" ({p['reason'][:60]})" if p.get("reason") else "")
            status += f" | {check_cell(p.get('check'))} | {p.get('timing') or '-'}"
            if p["status"] == "ok" and p.get("samples_s"):
                cells = [fmt(st["median_s"] * 1e6, " us"),
                         f"{st['min_s'] * 1e6:.4g}..{st['max_s'] * 1e6:.4g} us",
                         f"{st['rel_noise'] * 100:.2f}%", fmt(m.get("GBps")), fmt(m.get("TFLOPs")),
                         fmt(m.get("peak_bytes", 0) / 2**20)]
            else:
                cells = [""] * 6
            lines.append(f"| {p['_run'] if many else ''} | {p['backend']} | {params} | {status} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += predicted_vs_measured(docs)
    with open(os.path.join(args.out, "index.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def check_cell(check):
    """The point's check against its CPU reference: ok or FAILED with the largest error."""
    if not check:
        return "-"
    verdict = "ok" if check["ok"] else "**FAILED**"
    cell = f"{verdict} (max abs err {check['max_abs_err']:.2g})"
    if check.get("scope"):
        cell += f"; {check['scope'][:40]}"
    return cell


if __name__ == "__main__":
    main()
