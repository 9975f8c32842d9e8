"""What a training run adds to its MLflow run beyond TRL's callback (which logs the trainer's arguments and the
loss curve): the project's settings, the data, the speed and totals, and the adapter folder as an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from research_tuner.lib.shared.tracking import MlflowTracker

#: manifest["result"] entries logged as metrics (the others are text: kernels, precision).
RESULT_METRICS = ("tokens_per_second", "tokens_seen", "wall_time_s", "train_time_s", "final_train_loss",
                  "final_eval_loss", "global_step", "trainable_params", "total_params", "padding_waste")


def log_training(tracker: MlflowTracker, run_id: str, manifest: dict[str, Any], folder: Path) -> None:
    """Settings as `training.*` parameters, the result's numbers as metrics, and the folder's adapter/ (with its
    card), tokenizer/, loss curve, training log and manifest as artifacts."""
    result = manifest["result"]
    tracker.log_params(run_id, manifest["training"], prefix="training.")
    tracker.log_params(run_id, {
        "base_model": manifest["base_model"], "train_rows": manifest["train_rows"],
        "validation_rows": manifest["validation_rows"], "fields": manifest["fields"],
        "precision_used": result.get("precision"), "attn_implementation": result.get("attn_implementation"),
        "loss_kernel": result.get("loss_kernel"), "processes": result.get("processes"),
        "hardware": result.get("hardware"),
    }, prefix="run.")
    tracker.log_metrics(run_id, {name: result.get(name) for name in RESULT_METRICS}, step=result.get("global_step"))
    for sub in ("adapter", "tokenizer"):
        tracker.log_artifacts(run_id, folder / sub, sub)
    for name in ("loss_curve.png", "training_log.parquet", "manifest.json"):
        if (folder / name).exists():
            tracker.client.log_artifact(run_id, str(folder / name))
