#!/usr/bin/env python3
"""Short summaries of a results folder for a GPU session's log (scripts/gpu_session.sh).

  results_summary.py DIR [--label TEXT] [--pairs]

Reads DIR/results.json and DIR/results.json.journal (the points a run cut off by its time
limit journaled but did not compact yet), and prints one line: point counts by status,
the checks' verdicts, and the first failures. --pairs adds one line per pair of points that
differ only in the variant (naive vs fused attention, kernel=simt vs tc, attn=naive vs
fused in the Evoformer block): median time and peak memory side by side, the numbers the
session's goals are read from. Only the standard library: it runs wherever python3 does.
"""
import argparse
import json
import os
import sys


def load(folder):
    """Points by id: results.json, then the journal's lines on top (the newer record wins)."""
    points = {}
    path = os.path.join(folder, "results.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                for p in json.load(f).get("points", []):
                    points[p["id"]] = p
        except (OSError, ValueError, KeyError) as e:
            print(f"{path}: unreadable ({e})", file=sys.stderr)
    journal = path + ".journal"
    if os.path.exists(journal):
        with open(journal) as f:
            for line in f:
                try:
                    p = json.loads(line)
                    points[p["id"]] = p
                except (ValueError, KeyError):
                    pass  # a line cut short by a kill: the point reruns on resume
    return points


def median_s(p):
    return (p.get("stats") or {}).get("median_s") or 0.0


def summary(points, label):
    counts = {}
    for p in points.values():
        counts[p.get("status", "?")] = counts.get(p.get("status", "?"), 0) + 1
    checked = [p for p in points.values() if isinstance(p.get("check"), dict)]
    bad = [p for p in checked if not p["check"].get("ok", False)]
    parts = [f"{label}: {len(points)} points"]
    parts.append(", ".join(f"{k} {counts[k]}" for k in ("ok", "oom", "failed", "skipped") if k in counts) or "none")
    if checked:
        parts.append(f"checks {len(checked) - len(bad)} ok, {len(bad)} FAILED")
    line = "; ".join(parts)
    firsts = {p["id"]: p for p in bad[:3]}
    firsts.update({p["id"]: p for p in points.values() if p.get("status") == "failed" and p["id"] not in firsts}
                  if len(firsts) < 3 else {})
    for p in list(firsts.values())[:3]:
        why = p.get("reason") or ("check max_abs_err %g" % p["check"].get("max_abs_err", 0) if p in bad else "")
        line += f" | {p['id']}: {why[:120]}"
    return line


MAX_PAIRS = 30  # the device tool returns the last 12,000 characters of output


def variant_key(p):
    """(pair key, variant) for points that come in naive/fused or simt/tc pairs, else None."""
    bench, params = p.get("bench", ""), dict(p.get("params", {}))
    if bench.startswith("evoformer_attn_") and "kernel" in params:
        variant = params.pop("kernel")
        return (bench, tuple(sorted(params.items()))), variant
    if bench.startswith("evoformer_attn_naive_") or bench.startswith("evoformer_attn_fused_"):
        variant = "naive" if "_naive_" in bench else "fused"
        return (bench.replace("_naive_", "_*_").replace("_fused_", "_*_"), tuple(sorted(params.items()))), variant
    if bench == "evoformer_block" and "attn" in params:
        variant = params.pop("attn")
        return (bench, tuple(sorted(params.items()))), variant
    return None


def fmt(p):
    if p is None:
        return "not run"
    if p.get("status") != "ok":
        return p.get("status", "?")
    peak = (p.get("metrics") or {}).get("peak_bytes", 0.0)
    return f"{median_s(p) * 1e3:.3f} ms, peak {peak / 2**30:.2f} GiB"


def pairs(points):
    groups = {}
    for p in points.values():
        kv = variant_key(p)
        if kv:
            groups.setdefault(kv[0], {})[kv[1]] = p
    lines, more = [], 0
    for (bench, params), by in groups.items():
        if len(by) < 2 or not any(p.get("status") == "ok" for p in by.values()):
            continue  # nothing measured yet: no comparison to show
        if len(lines) >= MAX_PAIRS:
            more += 1
            continue
        a, b = ("naive", "fused") if "naive" in by else ("simt", "tc")
        pa, pb = by.get(a), by.get(b)
        ratio = ""
        if pa and pb and pa.get("status") == "ok" and pb.get("status") == "ok" and median_s(pb) > 0:
            ratio = f"  time x{median_s(pa) / median_s(pb):.2f}"
            peak_a = (pa.get("metrics") or {}).get("peak_bytes", 0.0)
            peak_b = (pb.get("metrics") or {}).get("peak_bytes", 0.0)
            if peak_b > 0:
                ratio += f", peak x{peak_a / peak_b:.2f}"
        shape = ",".join(f"{k}={v}" for k, v in params)
        lines.append(f"  {bench} {shape}: {a} {fmt(pa)} | {b} {fmt(pb)}{ratio}")
    if more:
        lines.append(f"  (+{more} more pairs in results.json)")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--label", default=None)
    ap.add_argument("--pairs", action="store_true")
    args = ap.parse_args()
    points = load(args.folder)
    print(summary(points, args.label or os.path.basename(os.path.normpath(args.folder))))
    if args.pairs:
        for line in pairs(points):
            print(line)


if __name__ == "__main__":
    main()
