#!/usr/bin/env bash
# mpirun -np N seqscale bench: rank 0 writes one file holding every rank's host/device,
# each point once; a rerun resumes (nothing new).
set -euo pipefail
seqscale="$1"; np="$2"; mpiexec="$3"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
cat > "$dir/m.json" <<'JSON'
{"name":"mr","timing":{"min_samples":3,"max_samples":5,"time_cap_s":0.05,"warmup_s":0},
 "benchmarks":[{"name":"selftest","backend":"cpu","axes":{"mode":["ok","oom"],"n":[64,128]}}]}
JSON
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$mpiexec" --oversubscribe -np "$np" "$seqscale" bench --matrix "$dir/m.json" --out "$dir/out" > "$dir/log" 2>&1
"$mpiexec" --oversubscribe -np "$np" "$seqscale" bench --matrix "$dir/m.json" --out "$dir/out" > "$dir/log2" 2>&1
grep -q "4 points, 0 run, 4 resumed" "$dir/log2" || { cat "$dir/log2"; exit 1; }
/usr/bin/python3 - "$dir/out/results.json" "$np" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert d["run"]["world_size"] == n, d["run"]
assert [r["rank"] for r in d["run"]["ranks"]] == list(range(n)), d["run"]["ranks"]
ids = [p["id"] for p in d["points"]]
assert len(ids) == 4 == len(set(ids)), ids
assert sorted(p["status"] for p in d["points"]) == ["ok", "ok", "oom", "oom"]
PY
echo "multirank $np ranks: ok"
