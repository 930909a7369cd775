"""Collective bus bandwidth vs message size, one panel per link tier.

Data: `collectives` points (nccl-tests style: params bytes, dtype, op; metrics busbw_GBps and
crosses_nodes, 1 when the group spans nodes). A tier is intra-node (NVLink, or shared memory for
CPU/MPI runs) or inter-node (InfiniBand); the cluster file's nominal link bandwidth for the
device is drawn as a reference where one names the device. A size that failed or timed out is
a gap in its line, listed in the note.
"""
import collections

import figures
import report_doc as doc
from report_data import metric, status_counts

_TIERS = {0: "intra-node", 1: "inter-node (crosses nodes)"}


def tier_of(point):
    return 1 if (metric(point, "crosses_nodes") or 0) > 0 else 0


def section(ctx):
    points = [p for p in ctx.points(suite="collectives") if "bytes" in p.get("params", {})]
    blocks = [doc.Heading(2, "Collective bus bandwidth")]
    tiers = sorted({tier_of(p) for p in points if p.get("status") == "ok"}) or [0]
    fig, axes = figures.new_figure(1, len(tiers), width=7.0 * len(tiers) + 1)
    any_drawn = False
    for ax, tier in zip(axes, tiers):
        mine = [p for p in points if tier_of(p) == tier]
        series = collections.defaultdict(list)
        for p in mine:
            prm = p["params"]
            world = ctx.run_of(p).info.get("world_size", 1)
            key = (p["bench"], prm.get("dtype", ""), prm.get("op", ""), p["backend"], world)
            series[key].append(p)
        drawn = False
        for (bench, dtype, op, backend, world), pts in sorted(series.items()):
            pts.sort(key=lambda p: p["params"]["bytes"])
            ys = [metric(p, "busbw_GBps") if p.get("status") == "ok" else None for p in pts]
            if not any(figures.positive(y) for y in ys):
                continue
            label = f"{bench} {dtype} {op} [{backend}, {world} ranks]".replace("  ", " ")
            ax.plot([p["params"]["bytes"] for p in pts], [y if figures.positive(y) else figures.NAN for y in ys],
                    marker=".", label=label)
            drawn = any_drawn = True
        if not drawn:
            figures.gap(ax, "no ok collectives results (seqscale bench --suite collectives, under mpirun for several ranks)")
            continue
        devices = {ctx.run_of(p).device for p in mine}
        for device in sorted(devices):
            cluster = ctx.cluster_for_device(device)
            peak = cluster and cluster.get("ib_GBps" if tier else "nvlink_GBps")
            if peak:
                ax.axhline(peak, color="#555555", linestyle="--", linewidth=0.8)
                ax.text(0.99, peak, f"{cluster['file']}: {'IB' if tier else 'NVLink'} {peak:g} GB/s",
                        fontsize=6, va="bottom", ha="right", transform=ax.get_yaxis_transform())
        figures.log_axis(ax, "x", 2)
        figures.log_axis(ax, "y")
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel("bus bandwidth (GB/s)")
        ax.set_title(_TIERS[tier])
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper left", ncol=2 if len(series) > 8 else 1)
        missing = status_counts(mine)
        if missing:
            figures.corner_note(ax, f"gaps (not drawn): {missing}")
    blocks.append(figures.save(fig, ctx, "busbw", "Collective bus bandwidth vs message size, per link tier",
                               ctx.provenance(points), "busbw as nccl-tests defines it (algbw x the collective's factor)."))
    if not any_drawn:
        blocks.append(doc.Note("No collectives results: run `seqscale bench --suite collectives` (under mpirun/srun for "
                               "several ranks)."))
    missing = status_counts(points)
    if missing:
        blocks.append(doc.Note(f"Collective points not ok, drawn as gaps: {missing}."))
    return blocks
