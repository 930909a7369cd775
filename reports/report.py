#!/usr/bin/python3
"""Render seqscale results (schema seqscale.results/1) as a report folder: index.html (opens
offline: inline CSS, relative images, no script), index.md, and every figure as PNG and SVG.

Usage (normally through `seqscale report`, which prepares --data):
  report.py --out DIR [--data DIR/data] [--scaling maxseq.json ...] results.json ...
Runs on Debian's python3 + python3-matplotlib. Reads results only; never writes into results/.

Each section is one module, registered in SECTIONS below; a section returns report blocks
(report_doc) and writes its figures with figures.save. Every figure states device, driver,
commit and date, and draws missing data as a gap with a note.
"""
import argparse
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("matplotlib") is None:  # a one-line message, not a traceback
    sys.exit("report.py: matplotlib is missing: install Debian's python3-matplotlib (scripts/deps does)")

import plot_benchmarks  # noqa: E402
import plot_busbw  # noqa: E402
import plot_maxseq  # noqa: E402
import plot_memory  # noqa: E402
import plot_predicted  # noqa: E402
import plot_roofline  # noqa: E402
import plot_throughput  # noqa: E402
import report_doc as doc  # noqa: E402
from report_data import InputError, load_context  # noqa: E402

# Adding a figure: one module with section(ctx), one line here.
SECTIONS = [
    plot_maxseq.section,       # max sequence vs GPU count, published points (Figure 9 view)
    plot_memory.section,       # peak memory by term, naive vs fused attention (Figure 7 view)
    plot_throughput.section,   # tokens/s and TFLOP/s per GPU vs sequence and GPUs, efficiency
    plot_roofline.section,     # kernels against the measured ceilings or the cluster's peaks
    plot_busbw.section,        # collectives' bus bandwidth per link tier
    plot_predicted.section,    # predicted vs measured, +-10% band, table of errors
    plot_benchmarks.section,   # runs, one figure and table per benchmark
]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="report folder")
    ap.add_argument("--data", help="folder seqscale report prepared (anchors, memory sweeps, clusters, meta)")
    ap.add_argument("--scaling", action="append", default=[], help="seqscale maxseq --json file")
    ap.add_argument("--measured-max-seq", action="append", default=[],
                    help="measured_max_seq.json of seqscale bench --maxseq (the hardware bisection)")
    ap.add_argument("results", nargs="*", help="results.json files")
    return ap.parse_args(argv)


def header_blocks(ctx):
    """Title and what went in."""
    blocks = [doc.Heading(1, "seqscale report")]
    items = [f"results: {len(ctx.runs)} file(s), {sum(len(r.points) for r in ctx.runs)} points"]
    if ctx.scaling:
        items.append(f"max-sequence files (cost model): {len(sorted({e['_file'] for e in ctx.scaling}))}")
    if ctx.measured_max_seq:
        items.append(f"measured max-sequence files: {len(sorted({e['_file'] for e in ctx.measured_max_seq}))}")
    items.append(f"memory sweeps (cost model): {len(ctx.sweeps)}")
    items.append(f"published anchors (seqscale validate): {len(ctx.anchors)}")
    if ctx.meta:
        items.append(f"generated {ctx.meta.get('generated_utc', '')} at commit `{ctx.meta.get('commit', '')}`")
    blocks.append(doc.Bullets(items))
    return blocks


def write_report(ctx):
    blocks = header_blocks(ctx)
    for section in SECTIONS:
        blocks += section(ctx)
    with open(os.path.join(ctx.out_dir, "index.md"), "w") as f:
        f.write(doc.to_markdown(blocks))
    with open(os.path.join(ctx.out_dir, "index.html"), "w") as f:
        f.write(doc.to_html(blocks, "seqscale report"))


def main(argv):
    args = parse_args(argv)
    if not args.results and not args.scaling:
        print("report.py: no results files given (and no --scaling files)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    try:
        ctx = load_context(args.out, args.results, args.scaling, args.data, args.measured_max_seq)
    except InputError as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2
    write_report(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
