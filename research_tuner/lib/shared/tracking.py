"""Experiment tracking in MLflow, through MLflow's own client: one MLflow run per training run, named after and
tagged with the Dagster run that trained the adapter. TRL's MLflow callback (`report_to="mlflow"`) logs the
trainer's arguments and every log entry (the loss curve, validation loss, learning rate) into it while training;
the training asset adds the project's settings, tokens per second and the adapter, and model_release adds the
evaluation scores and win rates, so two runs compare side by side in MLflow's UI.

The tracking URI comes from the settings or MLFLOW_TRACKING_URI; credentials only from MLflow's own variables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from research_tuner.settings import TrackingSettings

#: The tag that names the Dagster run an MLflow run belongs to (the training run), and the one of the run that
#: added the evaluation.
DAGSTER_RUN_TAG = "dagster_run_id"
DAGSTER_RELEASE_RUN_TAG = "dagster_release_run_id"
#: MLflow's limit on one parameter's value (longer values are cut, with an ellipsis).
_MAX_PARAM = 6000


class MlflowTracker:
    """The MLflow runs of one experiment on one tracking server."""

    def __init__(self, settings: TrackingSettings):
        # MLflow's usage telemetry phones home (the runs are offline; a person may set it to "false") and, from
        # its background thread, races the client over the variable it keeps its session in (a KeyError seen in
        # the tests); it must be off before mlflow is first imported.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise ImportError("tracking.backend=mlflow needs MLflow: pip install -e '.[tracking]'") from None

        self.settings = settings
        self.tracking_uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.client = MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.settings.experiment)
        return found.experiment_id if found else self.client.create_experiment(self.settings.experiment)

    def run_for(self, dagster_run_id: str, tags: Mapping[str, str] | None = None) -> str:
        """The MLflow run of this Dagster run: the one tagged with its id (a retried step continues it), else a
        new one named after it."""
        experiment = self.experiment_id()
        found = self.client.search_runs([experiment], filter_string=f"tags.{DAGSTER_RUN_TAG} = '{dagster_run_id}'",
                                        max_results=1)
        if found:
            return found[0].info.run_id
        run = self.client.create_run(experiment, run_name=f"dagster-{dagster_run_id[:8]}",
                                     tags={DAGSTER_RUN_TAG: dagster_run_id, **(tags or {})})
        return run.info.run_id

    @contextmanager
    def reporting_to(self, run_id: str) -> Iterator[str]:
        """While training: the variables through which TRL's MLflow callback (transformers' MLflowCallback) finds
        the server and continues `run_id`, in this process and in data-parallel workers; yields the `report_to`
        value for the trainer. The variables are restored afterwards."""
        import mlflow

        wanted = {"MLFLOW_RUN_ID": run_id}
        if self.tracking_uri:
            wanted["MLFLOW_TRACKING_URI"] = self.tracking_uri
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield "mlflow"
        except BaseException:  # a failed or interrupted training: the run says so, and no run stays active here
            if mlflow.active_run() is not None:
                mlflow.end_run("FAILED")
            else:
                self.client.set_terminated(run_id, status="FAILED")
            raise
        finally:
            mlflow.flush_async_logging()  # the callback logs asynchronously
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def log_params(self, run_id: str, params: Mapping[str, Any], prefix: str = "") -> None:
        """Flattened (`section.key`), each value as text; a value logged again must be the same."""
        from mlflow.entities import Param

        flat = _flatten(params, prefix)
        items = [Param(k, _text(v)) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        """The finite numbers of `metrics` (None and NaN are left out: MLflow stores no gap)."""
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, step or 0) for k, v in sorted(metrics.items())
                 if v is not None and math.isfinite(float(v))]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i:i + 1000])

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def tag(self, run_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def finish(self, run_id: str) -> None:
        self.client.set_terminated(run_id, status="FINISHED")

    def run_url(self, run_id: str) -> str:
        """Where the run shows in MLflow's UI (an http server), else its `runs:/` URI."""
        uri = self.tracking_uri or ""
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{self.experiment_id()}/runs/{run_id}"
        return f"runs:/{run_id}"


def _flatten(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _text(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= _MAX_PARAM else text[:_MAX_PARAM - 3] + "..."
