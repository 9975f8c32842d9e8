"""Assets against a temporary data lake: called directly, and the whole graph through the CLI with the
paper profile's OpenAI code path pointed at a loopback server and a tiny random Llama as the student."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.instance.ref import InstanceRef
from upath import UPath

from research_tuner import cli
from research_tuner.lake import read_parquet
from research_tuner.questions.assets import subdomains
from research_tuner.resources import PipelineSettings
from research_tuner_tests.support.openai_server import FakeOpenAIServer
from research_tuner_tests.support.secrets_scan import files_containing, sqlite_row_count

SECRET = "sk-test-this-must-never-be-written-0123456789"
JUDGE_SECRET = "sk-judge-this-must-never-be-written-9876543210"
JUDGE_PRICES = (3.0, 12.0)  # the judge's own USD per million prompt / completion tokens

REQUIRED_COLUMNS = {
    "subdomains": {"field", "subdomain"},
    "raw_questions": {"question_id", "field", "subdomain", "question", "teacher_model"},
    "deduped_questions": {"question_id", "field", "subdomain", "question"},
    "approaches": {"question_id", "field", "subdomain", "question", "approach", "teacher_model"},
    "dataset_split": {"question_id", "field", "subdomain", "question", "approach", "split"},
    "eval_generations": {"question_id", "field", "subdomain", "question", "reference", "model", "response"},
    "eval_scores": {"question_id", "field", "model", "rouge_l", "meteor", "section_coverage", "embedding_similarity",
                    "judge_score"},
    "eval_preferences": {"question_id", "field", "opponent", "outcome", "inconsistent", "verdict_fine_tuned_first",
                         "verdict_fine_tuned_second", "words_fine_tuned", "words_opponent"},
}


def test_subdomains_called_directly():
    context = dg.build_asset_context(partition_key="formal_sciences|0")
    frame = subdomains(context, settings=PipelineSettings(profile="paper"))
    assert frame["subdomain"].tolist()[:5] == ["mathematics", "statistics", "computer science", "logic",
                                               "data science"]
    limited = subdomains(dg.build_asset_context(partition_key="arts|0"),
                         settings=PipelineSettings(profile="demo", generation={"subdomains_per_field": 1}))
    assert len(limited) == 1


@pytest.fixture(scope="module")
def loopback_run(tmp_path_factory, tiny_model_dir):
    """One run of the whole graph, shared by the tests that read what it wrote; the judge (pointwise and pairwise)
    is an independent endpoint: another loopback server, model, key variable and prices than the teacher's."""
    tmp_path = tmp_path_factory.mktemp("graph")
    lake = tmp_path / "lake"
    with FakeOpenAIServer() as server, FakeOpenAIServer() as judge, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", SECRET)
        mp.setenv("JUDGE_API_KEY", JUDGE_SECRET)
        judge.expected_key = JUDGE_SECRET
        server.known_models, judge.known_models = {"gpt-4.1-mini"}, {"judge-7b"}  # what the preflight asks for
        mp.setenv("RESEARCH_TUNER_WORK", str(tmp_path / "work"))
        home = tmp_path / "dagster_home"  # a real instance (SQLite), so the secret test can search it too
        home.mkdir()
        shutil.copy(Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml", home / "dagster.yaml")
        mp.setenv("DAGSTER_HOME", str(home))
        args = [
            "run", "--profile", "paper", "--fields", "arts,humanities", "--lake", str(lake),
            "--set", f"teacher.base_url={server.base_url}",
            "--set", "teacher.questions_per_request=4",
            "--set", "generation.subdomains_per_field=2",
            "--set", "generation.questions_per_subdomain=8",
            "--set", f"training.base_model={tiny_model_dir}",
            "--set", "training.epochs=1",
            "--set", "training.max_length=256",
            "--set", "training.gradient_checkpointing=false",
            "--set", "evaluation.max_new_tokens=12",
            "--set", "evaluation.judge.enabled=true",
            "--set", f"evaluation.judge.base_url={judge.base_url}",
            "--set", "evaluation.judge.model=judge-7b",
            "--set", "evaluation.judge.api_key_env=JUDGE_API_KEY",
            "--set", f"evaluation.judge.price_input_per_mtok={JUDGE_PRICES[0]}",
            "--set", f"evaluation.judge.price_output_per_mtok={JUDGE_PRICES[1]}",
        ]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(args)
        yield code, lake, server, tmp_path, out.getvalue(), judge


def test_whole_graph_writes_every_asset(loopback_run):
    code, lake, server, _, out, judge = loopback_run
    assert code == 0
    assert f"ok: teacher: {server.base_url} answered" in out and f"ok: evaluation.judge: {judge.base_url}" in out
    assert server.paths["GET /v1/models"] == judge.paths["GET /v1/models"] == 1  # the preflight, once each
    for asset, columns in REQUIRED_COLUMNS.items():
        for field in ("arts", "humanities"):
            per_round = asset in ("subdomains", "raw_questions")  # partitioned by field x round: round 0 here
            frame = read_parquet(UPath(lake) / asset / (f"{field}/0.parquet" if per_round else f"{field}.parquet"))
            assert columns <= set(frame.columns), asset
            assert len(frame) > 0 and (frame["field"] == field).all(), asset
    split = pd.concat(read_parquet(UPath(lake) / "dataset_split" / f"{f}.parquet") for f in ("arts", "humanities"))
    assert set(split["split"]) == {"train", "validation"}
    assert (split["split"] == "validation").mean() == pytest.approx(0.25, abs=0.05)
    generations = read_parquet(UPath(lake) / "eval_generations" / "arts.parquet")
    assert set(generations["model"]) == {"base", "fine_tuned"}
    assert set(generations["question_id"]) <= set(split.loc[split["split"] == "validation", "question_id"])
    assert len(generations) == 2 * 2 * 2  # 2 subdomains x 2 questions x 2 models
    adapter = Path(lake) / "lora_adapter"
    assert (adapter / "adapter" / "adapter_config.json").is_file()
    assert (adapter / "tokenizer").is_dir() and (adapter / "training_log.parquet").is_file()
    assert "Not evaluated yet" in (adapter / "adapter" / "README.md").read_text()  # the card written at training
    release = Path(lake) / "model_release"  # the last job: cards and the dataset export
    assert "library_name: peft" in (release / "model" / "README.md").read_text()
    assert "| judge_score" in (release / "model" / "README.md").read_text()  # the report's table, judge included
    assert len(list((release / "dataset" / "data").glob("*/train-*.parquet"))) == 2  # arts and humanities
    report = Path(lake) / "eval_report"
    scores = read_parquet(UPath(report) / "scores_by_field.parquet")
    assert sorted(zip(scores["field"], scores["model"])) == [
        ("arts", "base"), ("arts", "fine_tuned"), ("humanities", "base"), ("humanities", "fine_tuned")]
    assert (report / "figure1_rouge_l.png").stat().st_size > 1000
    assert (report / "figure2_meteor.png").stat().st_size > 1000
    assert "Evaluation per field" in out and "fine_tuned" in out and str(lake) in out
    judgements = read_parquet(UPath(lake) / "eval_judgements" / "arts.parquet")
    assert len(judgements) == len(generations) and (judgements["status"] == "ok").all()
    assert "judge_score" in scores.columns and "judge_score" in out


def test_the_independent_judge_answers_the_judge_requests_at_its_own_prices(loopback_run):
    """The paper profile's evaluation with both judges on: every judge request goes to the judge's server and
    model (none to the teacher's), the win rates, their figure and the verdict are in the report and at the end
    of the run's output, and the cost metadata counts the judge's tokens at the judge's prices."""
    code, lake, server, tmp_path, out, judge = loopback_run
    assert code == 0
    preferences = pd.concat(read_parquet(UPath(lake) / "eval_preferences" / f"{f}.parquet")
                            for f in ("arts", "humanities"))
    assert len(preferences) == 2 * 2 * 2 * 2, "2 fields x 2 subdomains x 2 questions x 2 opponents"
    assert (preferences["outcome"] != "failed").all() and set(preferences["judge_model"]) == {"judge-7b"}
    assert judge.answered == len(preferences) * 2 + 2 * 2 * 2 * 2, "both orders per pair + a grade per answer"
    assert {b["model"] for b in judge.bodies} == {"judge-7b"}
    assert not any("<first_approach>" in json.dumps(b) or "Grade the RESPONSE" in json.dumps(b) for b in server.bodies)
    report = Path(lake) / "eval_report"
    wins = read_parquet(UPath(report) / "win_rates.parquet")
    assert set(wins["field"]) == {"arts", "humanities", "all"} and set(wins["opponent"]) == {"base", "reference"}
    assert (report / "figure4_win_rate.png").stat().st_size > 1000
    verdict = (report / "verdict.md").read_text()
    assert "The judge (judge-7b) preferred the fine-tuned answer" in verdict and "self-preference" not in verdict
    assert "win rate vs base" in out and "Verdict: " + verdict.strip() in out

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster_home"))) as instance:
        record = instance.get_latest_materialization_event(dg.AssetKey("eval_preferences"))
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert meta["judge/model"] == "judge-7b" and meta["judge/requests_sent"] == 16
    expected = (meta["judge/prompt_tokens"] * JUDGE_PRICES[0] + meta["judge/completion_tokens"] * JUDGE_PRICES[1]) / 1e6
    assert meta["judge/prompt_tokens"] > 0 and meta["judge/cost_usd"] == pytest.approx(expected, rel=1e-4)


def test_the_api_key_is_written_nowhere(loopback_run):
    """Not in Parquet, metadata, logs, run config, or the instance's SQLite run and event-log storage."""
    code, _, server, tmp_path, out, judge = loopback_run
    assert code == 0 and server.answered > 0
    home = tmp_path / "dagster_home"
    assert sqlite_row_count(home, "runs") == 9  # round + data + evaluation for 2 fields, training, report, release
    assert sqlite_row_count(home, "event_logs") > 50
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
        assert len(runs) == 9 and all(SECRET not in json.dumps(run.run_config) for run in runs)
        for run in runs:
            for record in instance.all_logs(run.run_id):
                assert SECRET not in (record.user_message or "")
                mat = record.asset_materialization
                if mat is not None:
                    assert SECRET not in json.dumps({k: str(v.value) for k, v in mat.metadata.items()})
    assert SECRET not in out and JUDGE_SECRET not in out
    assert files_containing(tmp_path, SECRET) == []
    assert files_containing(tmp_path, JUDGE_SECRET) == [] and judge.answered > 0
