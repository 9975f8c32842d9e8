"""benchmarks/README.md agrees with benchmarks/results/*.json, and benchmarks/tables.py renders every table from
results files in the format the benchmarks write now (a smoke run's, kept in data/bench_smoke/)."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SMOKE = Path(__file__).resolve().parent / "data" / "bench_smoke"
sys.path.insert(0, str(BENCHMARKS))

import tables  # noqa: E402


def test_the_readme_tables_are_the_results_files(monkeypatch):
    monkeypatch.delenv("RESEARCH_TUNER_BENCH_RESULTS", raising=False)
    assert tables.stale_blocks(tables.README.read_text(), tables.SECTIONS) == [], (
        "run `python benchmarks/tables.py --write`")


def test_a_changed_results_file_makes_its_block_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_TUNER_BENCH_RESULTS", str(SMOKE))
    readme = tables.README.read_text()
    assert set(tables.stale_blocks(readme, tables.SECTIONS)) >= {"training", "dedup", "teacher", "step_profile"}


@pytest.mark.parametrize("section", ["training", "dedup", "teacher", "eval_generation", "step_profile", "summary"])
def test_every_table_renders_from_the_current_results_format(section, monkeypatch):
    monkeypatch.setenv("RESEARCH_TUNER_BENCH_RESULTS", str(SMOKE))
    text = tables.SECTIONS[section]()
    assert "Pending" not in text and text.count("\n|") >= 2, text


def test_the_tables_carry_both_baselines_figures(monkeypatch):
    monkeypatch.setenv("RESEARCH_TUNER_BENCH_RESULTS", str(SMOKE))
    training = json.loads((SMOKE / "training.json").read_text())
    text = tables.training()
    strong = training["strong_baseline"]
    assert f"{training['ways'][strong]['tokens_per_s']['median']:.1f}" in text
    assert f"{training['comparison']['vs_tuned_trl']['speedup']}x" in text
    assert f"{training['untrained_validation_loss']:.3f}" in text
    dedup = json.loads((SMOKE / "dedup.json").read_text())["lexical"]["sizes"]["5000"]
    rows = [line for line in tables.dedup().splitlines() if line.startswith("| 5,000 |")]
    assert len(rows) == 3  # the project and both datasketch ways
    bulk = next(r for r in rows if "bulk" in r)
    assert f"{dedup['datasketch_bulk']['recall_on_injected']:.3f}" in bulk and f"{dedup['speedup_vs_bulk']}x" in bulk
    teacher = json.loads((SMOKE / "teacher.json").read_text())
    careful = next(r for r in tables.teacher().splitlines() if r.startswith("| careful"))
    assert str(teacher["careful_plain_client"]["wall_over_bound"]) in careful
