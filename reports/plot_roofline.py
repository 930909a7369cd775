"""Kernel roofline per device: achieved TFLOP/s against arithmetic intensity, and achieved GB/s
against bytes moved, under the device's ceilings.

Ceilings come from the `ceilings` matrix measured on the same device (the best `gemm` TFLOP/s,
bf16 when measured, and the best `copy` GB/s); when one was not measured, the cluster file
whose GPU is this device supplies its peak instead, and the figure says which source each
ceiling has. Without either, the roof is not drawn and the figure says so.
"""
import collections

import figures
import report_doc as doc
from report_data import fmt, metric


def measured_ceilings(points):
    """(TFLOP/s, what) and (GB/s, what) from gemm and copy points, or None."""
    gemm = [p for p in points if p["bench"] == "gemm" and figures.positive(metric(p, "TFLOPs"))]
    copy = [p for p in points if p["bench"] == "copy" and figures.positive(metric(p, "GBps"))]
    compute = bandwidth = None
    if gemm:
        bf16 = [p for p in gemm if p.get("params", {}).get("dtype") == "bf16"] or gemm
        best = max(bf16, key=lambda p: metric(p, "TFLOPs"))
        compute = (metric(best, "TFLOPs"), f"measured: gemm {best['params'].get('dtype', '')} "
                                           f"{best['params'].get('m')}x{best['params'].get('n')}x{best['params'].get('k')}")
    if copy:
        best = max(copy, key=lambda p: metric(p, "GBps"))
        bandwidth = (metric(best, "GBps"), f"measured: copy {best['params'].get('bytes', 0) / 2**20:.0f} MiB")
    return compute, bandwidth


def device_ceilings(ctx, device, points):
    compute, bandwidth = measured_ceilings(points)
    cluster = ctx.cluster_for_device(device)
    if cluster:
        if compute is None and cluster.get("peak_bf16_TFLOPs"):
            compute = (cluster["peak_bf16_TFLOPs"], f"cluster file {cluster['file']}: bf16 peak (none measured)")
        if bandwidth is None and cluster.get("hbm_GBps"):
            bandwidth = (cluster["hbm_GBps"], f"cluster file {cluster['file']}: HBM peak (none measured)")
    return compute, bandwidth


def _draw(ax_r, ax_b, device, points, compute, bandwidth, benches):
    colors = {b: figures.color_for(b, benches) for b in benches}
    roof_pts = [p for p in points if figures.positive(p.get("declared", {}).get("flops"))
                and figures.positive(p.get("declared", {}).get("bytes")) and figures.positive(metric(p, "TFLOPs"))]
    bw_pts = [p for p in points if figures.positive(metric(p, "GBps")) and figures.positive(p.get("declared", {}).get("bytes"))]
    for bench in benches:
        mine = [p for p in roof_pts if p["bench"] == bench]
        if mine:
            ax_r.scatter([p["declared"]["flops"] / p["declared"]["bytes"] for p in mine], [metric(p, "TFLOPs") for p in mine],
                         color=colors[bench], label=bench, s=18)
        mine = [p for p in bw_pts if p["bench"] == bench]
        if mine:
            ax_b.scatter([p["declared"]["bytes"] for p in mine], [metric(p, "GBps") for p in mine],
                         color=colors[bench], label=bench, s=18)
    notes = []
    if roof_pts:
        ais = [p["declared"]["flops"] / p["declared"]["bytes"] for p in roof_pts]
        lo, hi = min(ais) / 4, max(ais) * 4
        if compute and bandwidth:
            ridge = compute[0] * 1e3 / bandwidth[0]
            lo, hi = min(lo, ridge / 8), max(hi, ridge * 8)
            xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
            ax_r.plot(xs, [min(compute[0], x * bandwidth[0] / 1e3) for x in xs], color="black", linewidth=1.2,
                      label=f"roof (ridge {ridge:.3g} FLOP/B)")
        elif compute:
            ax_r.axhline(compute[0], color="black", linewidth=1.2, label="compute ceiling")
        figures.log_axis(ax_r, "x")
        figures.log_axis(ax_r, "y")
        ax_r.set_xlabel("arithmetic intensity (declared FLOPs / declared bytes)")
        ax_r.set_ylabel("achieved TFLOP/s")
        ax_r.grid(True, which="major", alpha=0.3)
        ax_r.legend(loc="lower right")
    else:
        figures.gap(ax_r, "no ok kernel point with declared FLOPs, bytes and a time on this device")
    if bw_pts:
        if bandwidth:
            ax_b.axhline(bandwidth[0], color="black", linewidth=1.2, label="bandwidth ceiling")
        figures.log_axis(ax_b, "x", 2)
        figures.log_axis(ax_b, "y")
        ax_b.set_xlabel("declared bytes moved per call")
        ax_b.set_ylabel("achieved GB/s")
        ax_b.grid(True, which="major", alpha=0.3)
        ax_b.legend(loc="lower right")
    else:
        figures.gap(ax_b, "no ok kernel point with declared bytes and a time on this device")
    said = [f"compute ceiling: {compute[0]:.4g} TFLOP/s ({compute[1]})" if compute else
            "compute ceiling: none (no gemm measured, no cluster file for this device)",
            f"bandwidth ceiling: {bandwidth[0]:.4g} GB/s ({bandwidth[1]})" if bandwidth else
            "bandwidth ceiling: none (no copy measured, no cluster file for this device)"]
    # Which ceiling is which, and where it comes from, in each panel's title.
    ax_r.set_title(f"{device}: roofline\n{said[0]}", fontsize=8)
    ax_b.set_title(f"{device}: bandwidth\n{said[1]}", fontsize=8)
    if not compute or not bandwidth:
        notes.append(f"{device}: " + "; ".join(s for s in said if "none" in s))
    return said, notes


def section(ctx):
    by_device = collections.defaultdict(list)
    for p in ctx.points(suite="kernels", status="ok", source="measured"):
        by_device[ctx.run_of(p).device].append(p)
    blocks = [doc.Heading(2, "Kernel roofline")]
    devices = sorted(by_device)[:4]
    fig, axes = figures.new_figure(max(1, len(devices)), 2)
    rows, notes = [], []
    for i, device in enumerate(devices):
        points = by_device[device]
        compute, bandwidth = device_ceilings(ctx, device, points)
        benches = sorted({p["bench"] for p in points})
        said, n = _draw(axes[2 * i], axes[2 * i + 1], device, points, compute, bandwidth, benches)
        notes += n
        rows.append([device, said[0], said[1]])
    if not devices:
        for ax in axes:
            figures.gap(ax, "no ok measured kernel results (run a kernel matrix, and the ceilings matrix on the device)")
        notes.append("No measured kernel results: nothing to place on a roofline.")
    prov = ctx.provenance([p for d in devices for p in by_device[d]])
    blocks.append(figures.save(fig, ctx, "roofline", "Kernel roofline: achieved TFLOP/s and GB/s against the device's ceilings",
                               prov, "Ceilings: the ceilings matrix measured on the device (gemm, copy), else the cluster "
                                     "file's peaks, as each row says."))
    blocks += [doc.Note(n) for n in notes]
    if len(by_device) > len(devices):
        blocks.append(doc.Note(f"{len(by_device) - len(devices)} more devices not drawn: report them separately."))
    if rows:
        blocks.append(doc.Table(["device", "compute ceiling", "bandwidth ceiling"], rows))
        best = []
        for device in devices:
            compute, bandwidth = device_ceilings(ctx, device, by_device[device])
            for p in sorted(by_device[device], key=lambda p: p["id"]):
                tf, gb = metric(p, "TFLOPs"), metric(p, "GBps")
                best.append([p["id"], fmt(tf), fmt(tf / compute[0] * 100 if (tf and compute) else None, "%"),
                             fmt(gb), fmt(gb / bandwidth[0] * 100 if (gb and bandwidth) else None, "%")])
        blocks.append(doc.Table(["point", "TFLOP/s", "of compute ceiling", "GB/s", "of bandwidth ceiling"], best))
    return blocks
