"""End to end on the embedded default: the real SmolLM2-135M as teacher and student, two fields, tiny counts."""

import contextlib
import io
from pathlib import Path

import pytest
from upath import UPath

from research_tuner import cli
from research_tuner.lake import read_parquet
from research_tuner.lib.shared.sections import missing_sections

FIELDS = ("life_sciences", "humanities")
PARTITIONED = ["subdomains", "raw_questions", "deduped_questions", "approaches", "dataset_split",
               "eval_generations", "eval_scores"]


@pytest.mark.slow
def test_demo_profile_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_TUNER_WORK", str(tmp_path / "work"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    lake = tmp_path / "lake"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([
            "run", "--profile", "demo", "--fields", ",".join(FIELDS), "--lake", str(lake),
            "--set", "generation.subdomains_per_field=1",
            "--set", "generation.questions_per_subdomain=8",
            "--set", "evaluation.questions_per_subdomain=1",
            "--set", "evaluation.max_new_tokens=48",
            "--set", "training.max_length=384",
        ])
    assert code == 0, out.getvalue()
    # adjacent fields: their approaches and their answers are each one run over both (single-run backfills)
    assert "data_job [humanities..life_sciences] (approaches) done" in out.getvalue()
    assert "evaluation_job [humanities..life_sciences] (eval_generations) done" in out.getvalue()
    for asset in PARTITIONED:
        for field in FIELDS:
            per_round = asset in ("subdomains", "raw_questions")  # round 0, the CLI's default
            frame = read_parquet(UPath(lake) / asset / (f"{field}/0.parquet" if per_round else f"{field}.parquet"))
            assert len(frame) > 0, (asset, field)
    questions = read_parquet(UPath(lake) / "raw_questions" / "humanities" / "0.parquet")
    assert questions["question"].str.endswith("?").all()
    approaches = read_parquet(UPath(lake) / "approaches" / "life_sciences.parquet")
    assert all(not missing_sections(a) for a in approaches["approach"])
    assert (Path(lake) / "lora_adapter" / "adapter" / "adapter_config.json").is_file()
    scores = read_parquet(UPath(lake) / "eval_report" / "scores_by_field.parquet")
    assert sorted(zip(scores["field"], scores["model"])) == sorted(
        (f, m) for f in FIELDS for m in ("base", "fine_tuned"))
    assert scores["rouge_l"].between(0, 1).all() and (scores["rouge_l"] > 0).all()
    assert scores["embedding_similarity"].between(-1, 1).all()
    assert "Evaluation per field" in out.getvalue()
    # the demo keeps the judge off (a 135M model cannot judge): no verdict request, and the verdict says so
    assert all(read_parquet(UPath(lake) / "eval_preferences" / f"{f}.parquet").empty for f in FIELDS)
    assert "Verdict: " in out.getvalue() and "No pairwise judge ran" in out.getvalue()
