"""MLflow tracking against a real tracking server (SQLite-backed, started here on 127.0.0.1): lora_adapter, run by
Dagster on a tiny model, logs into one MLflow run named after its Dagster run - TRL's curve and validation loss
(report_to), the settings, tokens per second, the adapter as an artifact - and model_release adds the evaluation
scores and win rates to that run; a second training is a second run beside it. Also what model_release writes."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from huggingface_hub import ModelCard

from research_tuner.lake import ParquetLakeIOManager
from research_tuner.lib.evaluation.report import comparison_table
from research_tuner.lib.evaluation.win_rate import WIN_RATES
from research_tuner.lib.shared.tracking import DAGSTER_RELEASE_RUN_TAG, DAGSTER_RUN_TAG
from research_tuner.partitions import field_partitions
from research_tuner.release.assets import model_release
from research_tuner.resources import PipelineSettings
from research_tuner.training.assets import lora_adapter
from research_tuner_tests.support.mlflow_server import mlflow_server
from research_tuner_tests.support.secrets_scan import files_containing

# two trainings and a release of a tiny model beside a server that starts in 15-35 s: 1.5-2.5 min of wall time
pytestmark = pytest.mark.slow

EXPERIMENT = "research_tuner_test"
HF_SECRET = "hf_test-this-must-never-be-written-0123456789"
TRAINING = {"lora_r": 8, "lora_alpha": 16, "learning_rate": 5e-3, "warmup_ratio": 0.0, "per_device_batch_size": 4,
            "gradient_accumulation_steps": 1, "epochs": 2, "max_length": 256, "precision": "fp32",
            "logging_steps": 1, "save_steps": 100, "evals_per_epoch": 2, "eval_on_start": True}


def _split_table() -> pd.DataFrame:
    rows = []
    for field in ("arts", "humanities"):
        for i in range(10):
            rows.append({"question_id": f"{field}-{i}", "field": field, "subdomain": "music" if field == "arts"
                         else "history", "question": f"How does factor {i} shape {field} in cities?",
                         "approach": f"## Hypothesis\nFactor {i} matters.\n## Methodology\nA survey of {i + 3} sites.",
                         "split": "validation" if i < 2 else "train", "split_seed": 0, "validation_fraction": 0.25})
    return pd.DataFrame(rows)


def _write_report(folder) -> pd.DataFrame:
    """An eval_report folder with the real report functions' tables (the scores are made up)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    scores = pd.DataFrame([{"field": f, "question_id": f"{f}-{i}", "model": m, "rouge_l": rng.uniform(0.1, 0.3)}
                           for f in ("arts", "humanities") for i in range(2) for m in ("base", "fine_tuned")])
    comparison = comparison_table(scores, names=("rouge_l",))
    comparison.to_parquet(folder / "comparison.parquet", index=False)
    WIN_RATES.frame([{"field": "all", "opponent": "base", "n": 4, "wins": 3, "ties": 0, "losses": 1, "failed": 0,
                      "win_rate": 0.75, "win_rate_ci_low": 0.3, "win_rate_ci_high": 0.95, "preferred_or_tied": 0.75,
                      "inconsistency_rate": 0.0, "words_fine_tuned": 20.0, "words_opponent": 18.0,
                      "lc_win_rate": 0.7, "lc_win_rate_ci_low": 0.3, "lc_win_rate_ci_high": 0.9}]).to_parquet(
        folder / "win_rates.parquet", index=False)
    (folder / "verdict.md").write_text("Over 4 validation questions, ROUGE-L moved within its interval.\n")
    return comparison


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("tracking")
    lake = tmp / "lake"
    for field, rows in _split_table().groupby("field"):
        (lake / "dataset_split").mkdir(parents=True, exist_ok=True)
        rows.to_parquet(lake / "dataset_split" / f"{field}.parquet", index=False)
    comparison = _write_report(lake / "eval_report")
    external = [dg.AssetSpec("dataset_split", partitions_def=field_partitions), dg.AssetSpec("eval_report")]
    with mlflow_server(tmp / "mlflow") as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", HF_SECRET)  # the training reads it (gated models); it must reach no run, file or card
        def resources(**training):
            overrides = {"training": {"base_model": str(tiny_model_dir), **TRAINING, **training},
                         "tracking": {"backend": "mlflow", "tracking_uri": url, "experiment": EXPERIMENT}}
            return {"settings": PipelineSettings(profile="demo", **overrides, work_dir=str(tmp / "work")),
                    "io_manager": ParquetLakeIOManager(root=str(lake))}

        first = dg.materialize([*external, lora_adapter], resources=resources(), selection=["lora_adapter"])
        trained = shutil.copytree(lake / "lora_adapter", tmp / "first_adapter")  # the second training replaces it
        manifest = json.loads((trained / "manifest.json").read_text())
        release = dg.materialize([*external, lora_adapter, model_release], resources=resources(),
                                 selection=["model_release"])
        second = dg.materialize([*external, lora_adapter], resources=resources(learning_rate=1e-3),
                                selection=["lora_adapter"])
        from mlflow import MlflowClient

        yield {"client": MlflowClient(url), "first": first, "release": release, "second": second,
               "manifest": manifest, "lake": lake, "trained": trained, "comparison": comparison, "tmp": tmp}


def _run_of(tracked, dagster_run_id):
    client = tracked["client"]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], f"tags.{DAGSTER_RUN_TAG} = '{dagster_run_id}'")
    assert len(runs) == 1
    return runs[0]


def test_one_mlflow_run_per_training_named_after_its_dagster_run(tracked):
    first, second = tracked["first"], tracked["second"]
    assert first.success and tracked["release"].success and second.success
    run = _run_of(tracked, first.run_id)
    assert run.info.run_name == f"dagster-{first.run_id[:8]}"
    assert tracked["manifest"]["mlflow_run_id"] == run.info.run_id
    assert run.data.tags[DAGSTER_RELEASE_RUN_TAG] == tracked["release"].run_id
    other = _run_of(tracked, second.run_id)
    assert other.info.run_id != run.info.run_id  # side by side in the same experiment
    assert (run.data.params["training.learning_rate"], other.data.params["training.learning_rate"]) == (
        "0.005", "0.001")


def test_params_curve_validation_loss_and_speed_come_back(tracked):
    client, run = tracked["client"], _run_of(tracked, tracked["first"].run_id)
    params = run.data.params
    assert params["training.lora_r"] == "8" and params["run.train_rows"] == "16"
    assert params["learning_rate"] == "0.005"  # TRL's own arguments, logged by its MLflow callback
    log = pd.read_parquet(tracked["trained"] / "training_log.parquet")
    losses = log.dropna(subset=["loss"])
    curve = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, round(m.value, 5)) for m in sorted(curve, key=lambda m: m.step)] == [
        (int(s), round(v, 5)) for s, v in zip(losses["step"], losses["loss"])]
    assert len(curve) >= 8
    evals = log.dropna(subset=["eval_loss"])
    eval_curve = client.get_metric_history(run.info.run_id, "eval_loss")
    assert sorted(m.step for m in eval_curve) == evals["step"].astype(int).tolist() and len(eval_curve) >= 2
    result = tracked["manifest"]["result"]
    assert run.data.metrics["tokens_per_second"] == pytest.approx(result["tokens_per_second"]) and result[
        "tokens_per_second"] > 0
    assert run.data.metrics["tokens_seen"] == result["tokens_seen"] > 0


def test_the_adapter_is_an_artifact(tracked):
    client, run = tracked["client"], _run_of(tracked, tracked["first"].run_id)
    names = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/README.md"} <= names
    local = client.download_artifacts(run.info.run_id, "adapter/adapter_model.safetensors", str(tracked["tmp"]))
    lake_copy = tracked["trained"] / "adapter" / "adapter_model.safetensors"
    assert open(local, "rb").read() == lake_copy.read_bytes()
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"loss_curve.png", "manifest.json", "eval_report"} <= top


def test_the_evaluation_scores_and_win_rates_join_the_training_run(tracked):
    run = _run_of(tracked, tracked["first"].run_id)
    overall = tracked["comparison"].set_index(["field", "metric"]).loc[("all", "rouge_l")]
    metrics = run.data.metrics
    assert metrics["eval.rouge_l.delta"] == pytest.approx(overall["delta"])
    assert metrics["eval.rouge_l.delta_ci_low"] == pytest.approx(overall["delta_ci_low"])
    assert metrics["eval.arts.rouge_l.fine_tuned"] > 0
    assert metrics["win_rate_vs_base"] == 0.75 and metrics["win_rate_vs_base.ci_high"] == 0.95


def test_no_secret_reaches_mlflow_the_lake_or_the_cards(tracked):
    assert (tracked["tmp"] / "mlflow" / "mlflow.db").is_file()
    assert files_containing(tracked["tmp"], HF_SECRET) == []  # the SQLite store, the artifacts, the lake


def test_model_release_writes_the_cards_and_the_dataset(tracked):
    from datasets import load_dataset

    release = tracked["lake"] / "model_release"
    card = ModelCard.load(release / "model" / "README.md")
    assert card.data.library_name == "peft" and card.data.license == "other"  # a local base without a card
    assert "rouge_l" in card.text and "0.750 [0.300, 0.950]" in card.text and "moved within its interval" in card.text
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "manifest.json"} <= {
        p.name for p in (release / "model").iterdir()}
    training_card = ModelCard.load(tracked["trained"] / "adapter" / "README.md")
    assert "Not evaluated yet" in training_card.text and "tokens seen" in training_card.text
    data = load_dataset(str(release / "dataset"), cache_dir=str(tracked["tmp"] / "hf_cache"))  # see test_dataset
    assert (len(data["train"]), len(data["validation"])) == (16, 4)
