#!/usr/bin/python3
"""seqscale report over fixture results (tests/reports/fixtures, see make_fixtures.py): every
figure is written as PNG and SVG and stamped with its provenance, index.html is self-contained
(relative images that exist, no script, no URL elsewhere), index.md matches it, and empty,
partial and all-OOM results draw gaps with notes instead of crashing or drawing zeros. Bad input
is one line and exit 2.

  SEQSCALE_BIN=build/harness/cli/seqscale python3 -m unittest -v report_test   (from tests/reports)
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

import support

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="seqscale_report_test_")
        self.out = os.path.join(self.tmp, "report")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers -----------------------------------------------------------------------

    def render_ok(self, names, extra=()):
        ran = support.render(names, self.out, extra)
        self.assertEqual(ran.returncode, 0, ran.stdout + ran.stderr)
        with open(os.path.join(self.out, "index.md")) as f:
            md = f.read()
        with open(os.path.join(self.out, "index.html")) as f:
            page = f.read()
        return md, page

    def svg_text(self, stem):
        """The text of a figure's SVG (matplotlib keeps text as text: svg.fonttype none)."""
        root = ET.parse(os.path.join(self.out, stem + ".svg")).getroot()
        return " ".join(t.strip() for t in root.itertext() if t.strip())

    def assert_figures(self, stems):
        for stem in stems:
            with open(os.path.join(self.out, stem + ".png"), "rb") as f:
                self.assertEqual(f.read(8), PNG_MAGIC, stem)
            self.assertGreater(os.path.getsize(os.path.join(self.out, stem + ".png")), 5000, stem)
            text = self.svg_text(stem)  # parses: a well-formed SVG
            for field in ("device:", "driver:", "commit:", "date:"):
                self.assertIn(field, text, f"{stem}.svg does not state its {field}")

    def assert_self_contained(self, page, md):
        self.assertNotIn("<script", page.lower())
        for attr, url in re.findall(r'(src|href)="([^"]+)"', page):
            self.assertFalse(re.match(r"^([a-z]+:|//)", url), f"{attr}={url} leaves the report folder")
            if not url.startswith("#"):
                self.assertTrue(os.path.exists(os.path.join(self.out, url)), f"{url} is referenced but missing")
        imgs = re.findall(r'<img src="([^"]+)\.png"', page)
        self.assertEqual(sorted(imgs), sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\.png\)", md)))
        for stem in imgs:
            self.assertTrue(os.path.exists(os.path.join(self.out, stem + ".svg")), stem)
        return imgs

    # ---- reports -----------------------------------------------------------------------

    def test_full(self):
        md, page = self.render_ok(support.FULL)
        figures = support.CORE_FIGURES + ["kernels_gemm", "kernels_copy", "kernels_layernorm_fwd",
                                          "steps_transformer_step", "collectives_all_reduce", "collectives_all_gather"]
        self.assert_figures(figures)
        self.assertEqual(sorted(self.assert_self_contained(page, md)), sorted(figures))
        # The per-benchmark table keeps the check and the timer.
        self.assertIn("| check | timer |", md)
        self.assertIn("**FAILED**", md)
        self.assertIn("ok (max abs err", md)
        self.assertIn("| cupti |", md)
        # Published Figure 9 points with their error, as validate knows them.
        self.assertIn("megatron-deepspeed-new", self.svg_text("scaling_maxseq"))
        self.assertIn("published (DS4Sci Fig. 9)", self.svg_text("scaling_maxseq"))
        self.assertRegex(md, r"\| genslm-25b \| megatron-deepspeed-new \| 16 \| 192 \|")
        # Memory: stacked by term, the binding term named, naive against fused.
        mem = self.svg_text("memory_gpt-30b-attention")
        for word in ("attention scores", "optimizer states", "naive attention", "fused attention", "GPU memory 40 GB"):
            self.assertIn(word, mem)
        self.assertIn("MSA depth", self.svg_text("memory_evoformer-msa-depth"))
        # Scaling efficiency of both kinds; roofline ceilings measured here; both link tiers.
        gpus = self.svg_text("throughput_gpus")
        self.assertIn("(weak)", gpus)
        self.assertIn("(strong)", gpus)
        self.assertIn("measured: gemm bf16 8192x8192x8192", md)
        self.assertIn("measured: copy 1024 MiB", md)
        busbw = self.svg_text("busbw")
        self.assertIn("intra-node", busbw)
        self.assertIn("inter-node", busbw)
        # Predicted vs measured: the band, the labels, the table of errors with its flag.
        pvm = self.svg_text("predicted_vs_measured")
        self.assertIn("+-10%", pvm)
        self.assertIn("layernorm_fwd", pvm)
        self.assertIn("## Predicted vs measured", md)
        self.assertIn("> 10%", md)
        # The model prices the first layernorm point ~19% slow (make_fixtures.py): its row is flagged.
        pvm_md = md.split("## Predicted vs measured", 1)[1]
        row = next(line for line in pvm_md.splitlines()
                   if line.startswith("| kernels/layernorm_fwd/cuda/cols=6144,dtype=bf16,rows=1024 |"))
        self.assertTrue(row.endswith("| > 10% |"), row)

    def test_partial(self):
        md, page = self.render_ok(["partial"])
        self.assert_figures(support.CORE_FIGURES + ["kernels_layernorm_fwd", "collectives_all_reduce"])
        self.assert_self_contained(page, md)
        # No ceilings measured on the H200: the cluster file's peaks, and the figure says so.
        self.assertIn("cluster file h200.json: bf16 peak (none measured)", md)
        self.assertIn("cluster file h200.json: HBM peak (none measured)", md)
        # Failed sizes and the timed-out step are gaps with a note.
        self.assertIn("Collective points not ok, drawn as gaps: 2 failed", md)
        self.assertIn("gaps (not drawn): 2 failed", self.svg_text("busbw"))
        self.assertIn("not drawn (gaps): 1 failed", self.svg_text("throughput_seq"))
        self.assertIn("no data", self.svg_text("throughput_gpus"))

    def test_empty(self):
        md, page = self.render_ok(["empty"])
        self.assert_figures(support.CORE_FIGURES)
        self.assert_self_contained(page, md)
        for stem in ("roofline", "busbw", "throughput_seq", "throughput_gpus"):
            self.assertIn("no data", self.svg_text(stem), stem)
        self.assertIn("holds no points", md)
        self.assertIn("No benchmark points", md)
        self.assertIn("No measured kernel results", md)

    def test_all_oom(self):
        md, page = self.render_ok(["oom"])
        stems = support.CORE_FIGURES + ["kernels_layernorm_fwd", "kernels_gemm", "steps_transformer_step",
                                        "collectives_all_reduce"]
        self.assert_figures(stems)
        self.assert_self_contained(page, md)
        for stem in stems[-4:]:
            self.assertIn("no data", self.svg_text(stem), stem)
            self.assertIn("oom", self.svg_text(stem), stem)
        # An OOM point has no time, throughput or peak: empty cells, never a zero.
        rows = [line for line in md.splitlines() if "| oom (" in line]
        self.assertEqual(len(rows), 7, md)
        for line in rows:
            cells = [c.strip() for c in line.strip("|").split("|")]
            self.assertEqual(cells[-6:], [""] * 6, line)

    def test_scaling_only(self):
        """Model files alone make a report: the Figure 9 view from maxseq files and anchors."""
        md, page = self.render_ok(["--scaling", "maxseq-genslm-25b-new.json"])
        self.assert_figures(support.CORE_FIGURES)
        self.assert_self_contained(page, md)
        self.assertIn("| genslm-25b | dgx-a100-40g | megatron-deepspeed-new | 32 |", md)
        # The fastest plan per GPU count (maxseq --at-seq) is a scaling series of its own.
        self.assertIn("fastest megatron-deepspeed-new", self.svg_text("throughput_gpus"))

    # ---- bad input: one line, exit 2 ---------------------------------------------------

    def assert_one_line_error(self, ran, needle):
        self.assertEqual(ran.returncode, 2, ran.stdout + ran.stderr)
        self.assertEqual(len(ran.stderr.strip().splitlines()), 1, ran.stderr)
        self.assertIn(needle, ran.stderr)

    def test_zero_results_files_is_an_error(self):
        self.assert_one_line_error(support.render([], self.out), "no results files given")
        empty_dir = os.path.join(self.tmp, "nothing-here")
        os.makedirs(empty_dir)
        self.assert_one_line_error(support.render([empty_dir], self.out), "no results.json in this folder or below")
        self.assert_one_line_error(support.render([os.path.join(self.tmp, "missing")], self.out),
                                   "no such results file or folder")
        self.assertFalse(os.path.exists(os.path.join(self.out, "index.html")))

    def test_bad_memory_sweep_names_the_field(self):
        bad = os.path.join(self.tmp, "sweep.json")
        with open(bad, "w") as f:
            f.write('{"name": "x", "model": "gpt-30b", "cluster": "dgx-a100-40g", "gpus": 32, "axis": "depth",'
                    ' "variants": {"fused": "attn=fused"}, "values": [1024]}')
        self.assert_one_line_error(support.render(["empty"], self.out, ["--memory-sweep", bad]), "'axis'")

    def test_folder_of_runs(self):
        """A folder without results.json of its own: every results.json below it."""
        runs = os.path.join(self.tmp, "runs")
        for name in ("empty", "oom"):
            os.makedirs(os.path.join(runs, name))
            shutil.copy(os.path.join(support.FIXTURES, name, "results.json"), os.path.join(runs, name))
        ran = subprocess.run([support.seqscale_binary(), "report", runs, "--out", self.out, "--no-memory-sweep"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(ran.returncode, 0, ran.stderr)
        with open(os.path.join(self.out, "index.md")) as f:
            md = f.read()
        self.assertIn("results: 2 file(s)", md)
        self.assertIn("No memory sweep", md)
        self.assert_figures(["memory"])

    def test_measured_max_seq_beside_results(self):
        """bench --maxseq writes DIR/results.json and DIR/measured_max_seq.json: report reads both,
        and the bisection's rows (measured_max, predicted_max) are a table apart from the model's
        search (maxseq files)."""
        run = os.path.join(self.tmp, "bisect")
        os.makedirs(run)
        shutil.copy(os.path.join(support.FIXTURES, "oom", "results.json"), run)
        rows = [{"bench": "transformer_stack", "backend": "cpu", "axis": "seq", "group": {"model": "tiny-gpt"},
                 "probes": [], "first_infeasible_reason": "out of memory", "measured_max": 4096,
                 "predicted_max": 8192},
                {"bench": "transformer_stack", "backend": "cpu", "axis": "seq", "group": {"model": "tiny-moe"},
                 "probes": [], "first_infeasible_reason": "", "measured_max": None, "predicted_max": None}]
        with open(os.path.join(run, "measured_max_seq.json"), "w") as f:
            json.dump(rows, f)
        ran = subprocess.run([support.seqscale_binary(), "report", run, "--out", self.out, "--no-memory-sweep"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(ran.returncode, 0, ran.stderr)
        with open(os.path.join(self.out, "index.md")) as f:
            md = f.read()
        self.assertIn("measured max-sequence files: 1", md)
        self.assertIn("| transformer_stack | cpu | seq | model=tiny-gpt | 4,096 | 8,192 | +100% |", md)
        self.assertIn("| model=tiny-moe | none fits | - |", md)
        # A row without predicted_max is a one-line error naming the row and field.
        del rows[0]["predicted_max"]
        with open(os.path.join(run, "measured_max_seq.json"), "w") as f:
            json.dump(rows, f)
        ran = subprocess.run([support.seqscale_binary(), "report", run, "--out", self.out, "--no-memory-sweep"],
                             capture_output=True, text=True, timeout=120)
        self.assert_one_line_error(ran, "row 0: field 'predicted_max'")


if __name__ == "__main__":
    unittest.main()
