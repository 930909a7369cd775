"""Shared by the report tests: where the seqscale binary and the fixtures are, and one call
that renders a report from named fixture results."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
ROOT = os.path.dirname(os.path.dirname(HERE))

# Fixture sets: the results folders and maxseq files each report is rendered from.
FULL = ["full/h100", "full/model", "full/collectives-intra", "full/collectives-inter", "cpu",
        "--scaling", "maxseq-genslm-25b-new.json", "--scaling", "maxseq-genslm-33b-mlm.json"]

# Figures every report has, whatever data it was given (a gap with a note when it has none).
CORE_FIGURES = ["scaling_maxseq", "memory_gpt-30b-attention", "memory_evoformer-msa-depth", "throughput_seq",
                "throughput_gpus", "roofline", "busbw", "predicted_vs_measured"]


def seqscale_binary():
    """$SEQSCALE_BIN (ctest sets it), else the default build's binary."""
    path = os.environ.get("SEQSCALE_BIN") or os.path.join(ROOT, "build", "harness", "cli", "seqscale")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no seqscale binary at {path} (set SEQSCALE_BIN)")
    return path


def fixture_args(names):
    """Fixture names to paths; flags (--scaling) pass through."""
    return [n if n.startswith("--") else os.path.join(FIXTURES, n) for n in names]


def render(names, out_dir, extra=()):
    """Runs seqscale report; returns the CompletedProcess (text output)."""
    cmd = [seqscale_binary(), "report", *fixture_args(names), "--out", out_dir, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
