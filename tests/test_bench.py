"""The benchmark tables: ratios computed from the rows of the same run, skips explained."""

from __future__ import annotations

import argparse
import re

from basam_ui import bench
from basam_ui.bench import prompt as bench_prompt
from basam_ui.bench.encoder import CaseResult, format_table, stock_attention_bytes


def test_encoder_table_ratios():
    rows = [
        CaseResult("vit_b", 1024, "stock", 20.0, 4_000_000_000, 500_000_000),
        CaseResult("vit_b", 1024, "vanilla", 10.0, 2_000_000_000, 500_000_000),
        CaseResult("vit_b", 1024, "basam", 11.0, 1_000_000_000, 500_000_000),
    ]
    rows.append(CaseResult("vit_b", 1024, "basam", 5.5, 1_000_000_000, 500_000_000, precision="bf16"))
    table = format_table(rows, beta=0.1).splitlines()
    assert "time/stock" in table[0] and "time/vanilla" in table[0] and "time/fp32" in table[0]
    vanilla, basam, basam_bf16 = table[2].split(), table[3].split(), table[4].split()
    assert vanilla[-5:] == ["0.50", "0.50", "-", "fp32", "-"]
    assert basam[-5:] == ["0.55", "0.25", "1.10", "fp32", "-"]
    # no bf16 vanilla row: no time/vanilla; bf16 over the fp32 BA-SAM row of the same run
    assert basam_bf16[-5:] == ["0.28", "0.25", "-", "bf16", "0.50"]


def test_encoder_table_without_stock():
    rows = [
        CaseResult("vit_t", 2048, "stock", note="skipped (TinyViT's stock forward only runs at 1024)"),
        CaseResult("vit_t", 2048, "vanilla", 8.0, 1, 1),
        CaseResult("vit_t", 2048, "basam", 8.2, 1, 1),
    ]
    table = format_table(rows, beta=0.1)
    assert "skipped (TinyViT" in table
    assert table.splitlines()[3].split()[-3] == "1.02"


def test_stock_memory_estimate_matches_the_spec():
    # spec sec. 6: one fp32 N x N matrix per head is 1.07 GB at S = 2048; vit_b has 12 heads
    assert abs(stock_attention_bytes("vit_b", 2048) / 3 / 12 - 1.07e9) < 0.01e9


def test_encoder_bench_runs_a_small_case(capsys):
    args = argparse.Namespace(
        bench="encoder", models=["vit_t"], sizes=[256], repeats=1, device="cpu",
        checkpoint_dir=None, variants=["basam"], beta=0.1, precision=["fp32", "bf16"],
    )
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("vit_t")]
    assert len(lines) == 2
    for line in lines:  # columns: model (6), S (5), encoder label (28), then time in seconds
        assert float(line[6 + 1 + 5 + 2 + 28 :].split()[0]) > 0
    assert [line.split()[-2] for line in lines] == ["fp32", "bf16"]
    assert float(lines[1].split()[-1]) > 0  # bf16 / fp32 of the same run


def test_prompt_bench_table(capsys):
    args = argparse.Namespace(
        bench="prompt", models=["vit_t"], sizes=[256], predictions=8, device="cpu", checkpoint_dir=None,
        precision=["fp32", "bf16"],
    )
    assert bench_prompt.run_prompt_bench(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| vit_t")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [(c[2].split()[0], c[3], c[4]) for c in cells] == [
        ("fp32", "SAM's", "all"), ("fp32", "lean", "all"), ("fp32", "lean", "best"), ("bf16", "lean", "all"),
        ("bf16", "lean", "best")]  # fmt: skip
    for c in cells:  # model, S, precision, decoder forward, masks, encode, p50, p95, p50 / first
        assert c[1] == "256" and float(c[6]) > 0 and float(c[7]) >= float(c[6])
    assert cells[0][8] == "1.00" and float(cells[4][8]) > 0


def test_project_bench_prints_its_figures(capsys):
    args = argparse.Namespace(bench="project", files=30, images=2, objects=2, size=256)
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("total ") == 2 and "commit of one 256x192 object" in out
    for fmt in ("coco", "coco --polygons", "png", "yolo"):
        found = re.search(rf"^  {re.escape(fmt)} +([0-9.]+) +\(4 objects", out, re.MULTILINE)
        assert found and float(found.group(1)) >= 0, out
