"""What a training run leaves beside the adapter: the training log as a table, the loss curve, and the merged
model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.shared.inference import load_for_inference
from research_tuner.lib.shared.schema import RowSchema

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings

#: Columns of training_log.parquet that always exist (NaN where a step has no such value); others follow.
TRAINING_LOG = RowSchema("training_log", {
    "step": "int64", "epoch": "float64", "loss": "float64", "eval_loss": "float64", "learning_rate": "float64",
    "tokens_per_second": "float64",
})


def log_frame(log_history: list[dict]) -> pd.DataFrame:
    """One row per logged step: the training log entry and the evaluation at that step, merged."""
    rows = [e for e in log_history if "loss" in e or "eval_loss" in e]
    if not rows:
        return TRAINING_LOG.empty()
    frame = pd.DataFrame(rows)
    frame = frame.groupby("step", as_index=False, sort=True).first()  # first non-null value of each column
    for column in TRAINING_LOG.columns:
        if column not in frame.columns:
            frame[column] = float("nan")
    frame["step"] = frame["step"].astype("int64")
    ordered = TRAINING_LOG.columns + sorted(c for c in frame.columns if c not in TRAINING_LOG.columns)
    return frame[ordered].reset_index(drop=True)


def plot_loss_curve(frame: pd.DataFrame, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    train = frame.dropna(subset=["loss"])
    evals = frame.dropna(subset=["eval_loss"])
    if len(train):
        ax.plot(train["step"], train["loss"], marker=".", label="training loss")
    if len(evals):
        ax.plot(evals["step"], evals["eval_loss"], marker="o", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (per completion token)")
    ax.set_title(title or "LoRA fine-tuning")
    ax.grid(alpha=0.3)
    if len(train) or len(evals):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def last_value(frame: pd.DataFrame, column: str) -> float | None:
    values = frame[column].dropna()
    return float(values.iloc[-1]) if len(values) else None


def write_merged(model, settings: TrainingSettings, adapter_dir: Path, tokenizer, merged_dir: Path, quantized: bool):
    """Write base + adapter as one plain model (in the training precision) to `merged_dir`."""
    if quantized:  # pragma: no cover - needs a GPU; merging into 4-bit weights would round them
        model, _ = load_for_inference(settings.base_model, adapter_dir, precision=settings.precision)
    merged = model.merge_and_unload()
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    merged.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
