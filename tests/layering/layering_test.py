#!/usr/bin/env python3
"""Proves the build enforces the layer rule (README "Layers", cmake/Layers.cmake).

  layering_test.py BUILD_DIR SOURCE_DIR LAYER   preprocess one-line probes with the exact
      flags the build uses for a real source of LAYER (from compile_commands.json): each
      forbidden header must fail with the compiler's "No such file or directory", each
      allowed header must resolve (preprocess).
  layering_test.py BUILD_DIR SOURCE_DIR views   every source outside tests/ is compiled
      with its own layer's include view and never with the source root.

Exit status 0 when all hold; otherwise one line per broken expectation and status 1."""
import json
import os
import shlex
import subprocess
import sys
import tempfile

# Per layer: headers it must not reach (each exists in the tree, so only the view can
# refuse it) and headers it must reach. Keep each list short: every probe runs the preprocessor.
PROBES = {
    "workloads": (["kernels/gemm/gemm_cost.h", "harness/bench/registry.h"],
                  ["workloads/step_program.h", "common/half.h"]),
    "kernels": (["model/estimate.h", "layers/evoformer_block/evoformer_block_def.h",
                 "comm/communicator.h", "harness/runner.h"],
                ["kernels/gemm/gemm_cost.h", "harness/bench/registry.h"]),
    "layers": (["model/estimate.h", "comm/communicator.h", "harness/results/results.h"],
               ["kernels/layernorm/layernorm_cost.h", "harness/steps/step_executor.h"]),
    "comm": (["kernels/gemm/gemm_cost.h", "model/estimate.h", "harness/results/results.h",
              "layers/evoformer_block/evoformer_block_def.h"],
             ["harness/bench/registry.h", "harness/rank_context.h"]),
    "model": (["comm/communicator.h", "harness/bench/registry.h", "kernels/gemm/gemm_ref.h",
               "kernels/gemm/gemm.cuh", "layers/evoformer_block/evoformer_block_ref.h"],
              ["kernels/gemm/gemm_cost.h", "layers/evoformer_block/evoformer_block_program.h"]),
    "harness": (["harness/cli/verb.h", "tests/support/seed.h"],
                ["model/estimate.h", "comm/communicator.h"]),
    "cli": (["tests/support/seed.h"], ["harness/cli/verb.h"]),
}


def layer_of(rel):
    if rel.startswith("harness/cli/"):
        return "cli"
    return rel.split("/", 1)[0] if "/" in rel else ""


def load_entries(build_dir, source_dir):
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    for e in entries:
        e["rel"] = os.path.relpath(os.path.realpath(e["file"]), os.path.realpath(source_dir))
        e["args"] = e["arguments"] if "arguments" in e else shlex.split(e["command"])
    return entries


def probe_command(entry, probe_path):
    """The entry's compiler and flags, preprocessing probe_path instead: include resolution
    is all the layer rule is about, and -E is a tenth of a compile."""
    args, out, skip_next = [], [], False
    source = os.path.realpath(entry["file"])
    for a in entry["args"]:
        if skip_next:
            skip_next = False
            continue
        if a in ("-o", "-MT", "-MF", "-MQ"):
            skip_next = True
            continue
        if a in ("-c", "-MD", "-MMD") or (not a.startswith("-") and os.path.realpath(
                os.path.join(entry["directory"], a)) == source):
            continue
        args.append(a)
    return args + ["-E", "-o", os.devnull, probe_path]


def check_layer(build_dir, source_dir, layer):
    entries = [e for e in load_entries(build_dir, source_dir)
               if layer_of(e["rel"]) == layer and e["rel"].endswith((".cc", ".cpp"))]
    if not entries:
        return ["layering %s: no C++ source of this layer in compile_commands.json" % layer]
    entry = entries[0]
    forbidden, allowed = PROBES[layer]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for header, must_resolve in [(h, False) for h in forbidden] + [(h, True) for h in allowed]:
            if not os.path.exists(os.path.join(source_dir, header)):
                problems.append("layering %s: probe header %s is not in the tree: update PROBES" % (layer, header))
                continue
            probe = os.path.join(tmp, "probe_%s.cpp" % layer)
            with open(probe, "w") as f:
                f.write('#include "%s"\n' % header)
            r = subprocess.run(probe_command(entry, probe), cwd=entry["directory"],
                               capture_output=True, text=True)
            refused = "%s: No such file or directory" % header in r.stderr
            if must_resolve and r.returncode != 0:
                first = (r.stderr.strip().splitlines() or ["?"])[0]
                problems.append("layering %s: allowed %s does not resolve (flags of %s): %s"
                                % (layer, header, entry["rel"], first))
            elif not must_resolve and not (r.returncode != 0 and refused):
                problems.append("layering %s: forbidden %s was not refused with 'No such file' (flags of %s)"
                                % (layer, header, entry["rel"]))
            else:
                print("layering %s: %-50s %s" % (layer, header, "resolves" if must_resolve else "refused"))
    return problems


def check_views(build_dir, source_dir):
    views = os.path.join(os.path.realpath(build_dir), "include-views")
    root = os.path.realpath(source_dir)
    problems, counted = [], 0
    for e in load_entries(build_dir, source_dir):
        if e["rel"].startswith(("tests/", "..")):
            continue
        includes = []
        for i, a in enumerate(e["args"]):
            if a in ("-I", "-isystem", "-iquote") and i + 1 < len(e["args"]):
                includes.append(e["args"][i + 1])
            elif a.startswith("-I"):
                includes.append(a[2:])
        includes = [os.path.realpath(os.path.join(e["directory"], p)) for p in includes]
        own = os.path.join(views, layer_of(e["rel"]))
        if own not in includes:
            problems.append("layering views: %s is not compiled with %s" % (e["rel"], own))
        if root in includes:
            problems.append("layering views: %s is compiled with the source root on its include path" % e["rel"])
        counted += 1
    print("layering views: %d sources outside tests/ checked" % counted)
    return problems


def main():
    if len(sys.argv) != 4:
        print("usage: layering_test.py BUILD_DIR SOURCE_DIR LAYER|views", file=sys.stderr)
        return 2
    build_dir, source_dir, what = sys.argv[1:]
    if what == "views":
        problems = check_views(build_dir, source_dir)
    elif what in PROBES:
        problems = check_layer(build_dir, source_dir, what)
    else:
        print("layering_test.py: layer '%s' is not one of %s" % (what, ", ".join(PROBES)), file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
