"""What the report reads: results files (schema seqscale.results/1), the maxseq files (the
model's search) and measured_max_seq files (the hardware bisection), and the
data seqscale report prepared in DIR/data (published anchors, memory sweeps, cluster peaks,
commit and date). Plain dicts in, small helpers out; nothing here draws.
"""
import collections
import dataclasses
import json
import math
import os

SCHEMA = "seqscale.results/1"


class InputError(Exception):
    """A bad input file: report.py prints the message as one line and exits 2."""


@dataclasses.dataclass
class Provenance:
    """Where the numbers of one figure come from: every figure states it."""
    device: str
    driver: str
    commit: str
    date: str

    def text(self):
        return f"device: {self.device}  |  driver: {self.driver}  |  commit: {self.commit}  |  date: {self.date}"


@dataclasses.dataclass
class Run:
    index: int
    path: str
    info: dict          # the file's "run" object
    points: list        # the file's points, each with "_run" set to index

    @property
    def device(self):
        return self.info.get("device") or "unknown device"


@dataclasses.dataclass
class Context:
    """Everything a figure may draw from, and where it writes."""
    out_dir: str
    runs: list
    scaling: list       # seqscale maxseq --json entries (the model's search), each with "_file"
    anchors: list       # seqscale validate --json rows
    sweeps: list        # memory sweeps priced by seqscale report
    clusters: list      # cluster files' peaks
    meta: dict          # commit and date of the report itself
    measured_max_seq: list = dataclasses.field(default_factory=list)  # bench --maxseq rows, each with "_file"

    def points(self, suite=None, status=None, source=None):
        """Every point of every run, filtered by suite, status and source."""
        for run in self.runs:
            for p in run.points:
                if suite is not None and p.get("suite") != suite:
                    continue
                if status is not None and p.get("status") != status:
                    continue
                if source is not None and p.get("source", "measured") != source:
                    continue
                yield p

    def run_of(self, point):
        return self.runs[point["_run"]]

    def provenance(self, points):
        """The device, driver, commit and date of the runs these points come from."""
        runs = sorted({p["_run"] for p in points})
        return provenance_of([self.runs[i] for i in runs], self.meta)

    def model_provenance(self, device):
        """Provenance of a figure the cost model drew: no driver, the report's own commit."""
        return Provenance(device=f"{device} (cost model)", driver="- (cost model)",
                          commit=short_commit(self.meta.get("commit", "")),
                          date=short_date(self.meta.get("generated_utc", "")))

    def cluster_for_device(self, device):
        """The first cluster file (by name) whose GPU is this device, else None."""
        for c in self.clusters:
            if c.get("gpu") and c["gpu"] == device:
                return c
        return None


def short_commit(commit):
    if not commit:
        return "unknown"
    dirty = commit.endswith("-dirty")
    return commit[:10] + ("-dirty" if dirty else "")


def short_date(stamp):
    """2026-11-22T14:00:00Z -> 2026-11-22 14:00Z (unknown when absent)."""
    if not stamp:
        return "unknown"
    return stamp.replace("T", " ")[:16] + ("Z" if stamp.endswith("Z") else "")


def joined(values, what):
    """One value as is; several as 'N <what>s: a, b'."""
    values = sorted({v for v in values if v}) or ["-"]
    if len(values) == 1:
        return values[0]
    return f"{len(values)} {what}s: " + ", ".join(values)


def provenance_of(runs, meta):
    if not runs:
        return Provenance("no results", "-", short_commit(meta.get("commit", "")),
                          short_date(meta.get("generated_utc", "")))
    return Provenance(device=joined([r.device for r in runs], "device"),
                      driver=joined([r.info.get("driver") or "none" for r in runs], "driver"),
                      commit=joined([short_commit(r.info.get("git_commit", "")) for r in runs], "commit"),
                      date=joined([short_date(r.info.get("started_utc", "")) for r in runs], "date"))


# ---- loading -------------------------------------------------------------------------------

def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise InputError(f"{path}: cannot open {what}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: corrupt {what} (not valid JSON: {e.msg} at line {e.lineno})")


def load_run(index, path):
    doc = read_json(path, "results file")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"{path}: field 'schema' is {got!r}, expected {SCHEMA!r}")
    points = [derive_stats(dict(p, _run=index)) for p in doc.get("points", [])]
    return Run(index=index, path=path, info=doc.get("run", {}), points=points)


def derive_stats(point):
    """Recomputes stats from samples_s (results/SCHEMA.md: stats are never trusted from the file)."""
    xs = sorted(s for s in point.get("samples_s", []) if isinstance(s, (int, float)))
    if not xs:
        point["stats"] = {"n": 0}
        return point
    n = len(xs)
    mid = n // 2
    median = xs[mid] if n % 2 else 0.5 * (xs[mid - 1] + xs[mid])
    mean = sum(xs) / n
    stddev = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    point["stats"] = {"n": n, "median_s": median, "min_s": xs[0], "max_s": xs[-1], "mean_s": mean,
                      "stddev_s": stddev, "rel_noise": stddev / mean if mean > 0 else 0.0}
    return point


def load_scaling(paths):
    entries = []
    for path in paths:
        doc = read_json(path, "maxseq file")
        if not isinstance(doc, list):
            raise InputError(f"{path}: expected the JSON array of seqscale maxseq --json")
        entries += [dict(e, _file=path) for e in doc]
    return entries


def load_measured_max_seq(paths):
    """Rows of `seqscale bench --maxseq` (DIR/measured_max_seq.json, results/SCHEMA.md): the
    hardware bisection, each row with measured_max and predicted_max (null: none fits, or no
    --cluster to predict with)."""
    rows = []
    for path in paths:
        doc = read_json(path, "measured max-sequence file")
        if not isinstance(doc, list):
            raise InputError(f"{path}: expected the JSON array of seqscale bench --maxseq (measured_max_seq.json)")
        for i, r in enumerate(doc):
            for field in ("bench", "backend", "axis", "measured_max", "predicted_max"):
                if not isinstance(r, dict) or field not in r:
                    raise InputError(f"{path}: row {i}: missing field '{field}'")
        rows += [dict(r, _file=path) for r in doc]
    return rows


def load_context(out_dir, results, scaling, data_dir, measured_max_seq=()):
    """Reads every input. data_dir may be None (report.py run by hand): figures that need
    what seqscale report prepares then say it is missing."""
    def data(name, default):
        path = os.path.join(data_dir, name) if data_dir else None
        return read_json(path, name) if path and os.path.exists(path) else default
    return Context(out_dir=out_dir,
                   runs=[load_run(i, p) for i, p in enumerate(results)],
                   scaling=load_scaling(scaling),
                   anchors=data("validate.json", []),
                   sweeps=data("memory_sweeps.json", []),
                   clusters=data("clusters.json", []),
                   meta=data("meta.json", {}),
                   measured_max_seq=load_measured_max_seq(measured_max_seq))


# ---- point helpers -------------------------------------------------------------------------

def metric(point, name):
    """A metric as a float, or None when absent or not a finite number (never 0 by default)."""
    v = point.get("metrics", {}).get(name)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def median_s(point):
    """The median time of a timed ok point, else None."""
    if point.get("status") != "ok" or not point.get("samples_s"):
        return None
    v = point.get("stats", {}).get("median_s")
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def param_text(params, skip=()):
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in skip)


def status_counts(points):
    """'2 oom, 1 failed' for the points that are not ok ('' when all are)."""
    counts = collections.Counter(p.get("status") for p in points if p.get("status") != "ok")
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def plan_fields(text):
    fields = {}
    for item in (text or "").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            fields[k.strip()] = v.strip()
    return fields


def data_parallel(plan_text, gpus):
    """dp of a plan on `gpus` GPUs, as workloads/plan.cc derives it: explicit dp, else 1
    when a Ulysses/LSS degree is left to be derived, else gpus / (tp*pp*sp_degree*dap)."""
    f = plan_fields(plan_text)
    if "dp" in f:
        return int(f["dp"])
    if f.get("sp") in ("ulysses", "lss") and "sp_degree" not in f:
        return 1
    model_par = 1
    for k in ("tp", "pp", "sp_degree", "dap"):
        model_par *= int(f.get(k, 1))
    return max(1, gpus // model_par)


def fmt(x, unit="", digits=4):
    """A number for a table: '' for missing, never a made-up zero."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}g}{unit}"
    return f"{x}{unit}"


def fmt_pct(err):
    return "" if err is None else f"{err * 100:+.3g}%"
