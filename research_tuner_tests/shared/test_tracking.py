"""MlflowTracker against a real MLflow tracking server (SQLite-backed, on 127.0.0.1), without training: one run
per Dagster run id, flattened parameters, metrics without gaps, artifacts over HTTP, the variables TRL's
callback reads set only while training, and a failed training marked FAILED."""

from __future__ import annotations

import os

import mlflow
import pytest

from research_tuner.lib.shared.tracking import DAGSTER_RUN_TAG, MlflowTracker
from research_tuner.settings import SettingsError, TrackingSettings, load_profile
from research_tuner_tests.support.mlflow_server import mlflow_server


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield MlflowTracker(TrackingSettings(backend="mlflow", tracking_uri=url, experiment="unit"))


def test_one_run_per_dagster_run(tracker):
    run_id = tracker.run_for("6f1c2d3e-run-1")
    assert tracker.run_for("6f1c2d3e-run-1") == run_id  # a retried step continues the run
    other = tracker.run_for("6f1c2d3e-run-2")
    assert other != run_id
    run = tracker.client.get_run(run_id)
    assert run.data.tags[DAGSTER_RUN_TAG] == "6f1c2d3e-run-1" and run.info.run_name == "dagster-6f1c2d3e"
    assert tracker.run_url(run_id) == f"{tracker.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run_id}"


def test_params_metrics_and_artifacts_come_back(tracker, tmp_path):
    run_id = tracker.run_for("6f1c2d3e-run-3")
    tracker.log_params(run_id, {"lora_r": 16, "nested": {"modules": ["q_proj", "v_proj"]}}, prefix="training.")
    tracker.log_metrics(run_id, {"tokens_per_second": 123.5, "missing": None, "nan": float("nan")}, step=7)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"r": 16}')
    tracker.log_artifacts(run_id, tmp_path / "adapter", "adapter")
    tracker.finish(run_id)
    run = tracker.client.get_run(run_id)
    assert run.data.params == {"training.lora_r": "16", "training.nested.modules": "q_proj,v_proj"}
    assert run.data.metrics == {"tokens_per_second": 123.5}  # no gap stored for None or NaN
    assert [m.step for m in tracker.client.get_metric_history(run_id, "tokens_per_second")] == [7]
    assert run.info.status == "FINISHED"
    local = tracker.client.download_artifacts(run_id, "adapter/adapter_config.json", str(tmp_path / "back"))
    assert open(local).read() == '{"r": 16}'


def test_the_callbacks_variables_live_only_while_training_and_a_failure_is_recorded(tracker, monkeypatch):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere.invalid")
    run_id = tracker.run_for("6f1c2d3e-run-4")
    with pytest.raises(RuntimeError, match="out of memory"):
        with tracker.reporting_to(run_id) as report_to:
            assert report_to == "mlflow" and os.environ["MLFLOW_RUN_ID"] == run_id
            assert os.environ["MLFLOW_TRACKING_URI"] == tracker.tracking_uri
            mlflow.start_run()  # what TRL's MLflowCallback does at the first step: continues run_id
            assert mlflow.active_run().info.run_id == run_id
            raise RuntimeError("out of memory")
    assert mlflow.active_run() is None
    assert "MLFLOW_RUN_ID" not in os.environ and os.environ["MLFLOW_TRACKING_URI"] == "http://elsewhere.invalid"
    assert tracker.client.get_run(run_id).info.status == "FAILED"


def test_a_tracking_uri_with_a_password_is_refused():
    with pytest.raises(SettingsError, match="MLFLOW_TRACKING_PASSWORD"):
        load_profile("demo", overrides={"tracking": {"backend": "mlflow",
                                                     "tracking_uri": "https://me:secret@mlflow.example.org"}})
