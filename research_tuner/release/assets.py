"""The `model_release` asset: the result leaves the lake - the adapter (and merged model) as Hub-ready folders
with their model cards, the dataset as a Hugging Face dataset with its card, the evaluation in the MLflow run of
the training, and the optional push to the Hub."""

import json
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from research_tuner.lib.release.dataset import Provenance, export_dataset
from research_tuner.lib.release.hub import Upload, publish
from research_tuner.lib.shared.tracking import DAGSTER_RELEASE_RUN_TAG, MlflowTracker
from research_tuner.metadata import preview
from research_tuner.resources import PipelineSettings

GROUP = "release"
#: Lines of the model card shown in the UI.
CARD_PREVIEW_LINES = 40
#: The merged model's card (library transformers), beside model/; it becomes README.md when the merged model is pushed.
MERGED_CARD = "merged_model_card.md"


@dg.asset(
    group_name=GROUP,
    kinds={"huggingface", "parquet"},
    description="Hub-ready folders: model/ (the adapter, its tokenizer and the model card with the training "
    "facts, the evaluation table with intervals and the limits), the merged model's card (when "
    "training.export_merged; the weights stay in lora_adapter/merged), and "
    "dataset/ (Parquet shards per field and split with a dataset card). With tracking.backend mlflow, the "
    "evaluation scores and win rates go to the training's MLflow run; with release.hub.push, model and dataset "
    "are uploaded (private by default).",
    ins={"dataset_split": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
)
def model_release(
    context: dg.AssetExecutionContext, settings: PipelineSettings, lora_adapter: Path, eval_report: Path,
    dataset_split: pd.DataFrame,
) -> Path:
    from research_tuner.lib.training.card import EvaluationTables, base_license, model_card

    profile = settings.resolve()
    release = profile.release
    manifest = json.loads((lora_adapter / "manifest.json").read_text())
    evaluation = EvaluationTables(
        comparison=pd.read_parquet(eval_report / "comparison.parquet"),
        win_rates=pd.read_parquet(eval_report / "win_rates.parquet"),
        verdict=(eval_report / "verdict.md").read_text() if (eval_report / "verdict.md").exists() else "",
    )
    base = manifest["base_model"]
    card_license = release.license or base_license(base, Path(base) if Path(base).is_dir() else None)
    out = Path(tempfile.mkdtemp(prefix="model_release-"))

    model = out / "model"
    shutil.copytree(lora_adapter / "adapter", model)
    shutil.copytree(lora_adapter / "tokenizer", model, dirs_exist_ok=True)
    for name in ("manifest.json", "loss_curve.png"):
        shutil.copy(lora_adapter / name, model / name)
    card = model_card(manifest, license=card_license, evaluation=evaluation,
                      dataset_repo_id=release.hub.dataset_repo_id)
    (model / "README.md").write_text(card)
    merged = lora_adapter / "merged"
    if merged.is_dir():  # its card only: the weights stay in lora_adapter/merged (gigabytes for a 3B model)
        (out / MERGED_CARD).write_text(model_card(manifest, license=card_license, evaluation=evaluation,
                                                  dataset_repo_id=release.hub.dataset_repo_id,
                                                  library_name="transformers"))

    counts = export_dataset(dataset_split, out / "dataset", Provenance(
        teacher_model=manifest.get("teacher_model") or profile.teacher.model,
        generation_rounds=sorted(int(r) for r in dataset_split.get("generation_round", pd.Series([0])).unique()),
        settings={name: getattr(profile, name).model_dump(mode="json") for name in ("generation", "dedup", "split")},
        license=release.dataset_license,
    ))

    tracking = {}
    if profile.tracking.backend == "mlflow":
        tracking = _track_evaluation(context, MlflowTracker(profile.tracking), manifest, evaluation, out, eval_report)
    pushed = {}
    if release.hub.push:
        folder = _merged_with_card(merged, out / MERGED_CARD) if release.hub.push_merged else out / "model"
        uploads = [Upload(folder, release.hub.model_repo_id, "model", "release.hub.model_repo_id")]
        if release.hub.dataset_repo_id:
            uploads.append(Upload(out / "dataset", release.hub.dataset_repo_id, "dataset",
                                  "release.hub.dataset_repo_id"))
        pushed = publish(uploads, release.hub)
        context.log.info("pushed to the Hub: " + ", ".join(pushed))
    context.add_output_metadata({
        "model_card": dg.MetadataValue.md("\n".join(card.splitlines()[:CARD_PREVIEW_LINES])),
        "license": card_license,
        "dataset_rows": dg.MetadataValue.json(counts),
        "dataset_preview": preview(dataset_split, ["field", "question"], rows=5),
        "merged_card": (out / MERGED_CARD).is_file(),
        "pushed": dg.MetadataValue.json(pushed),
        **tracking,
    })
    return out


def _merged_with_card(merged: Path, card: Path) -> Path:
    """A folder to upload: links to lora_adapter/merged's files (nothing copied) and the merged card as README.md."""
    if not card.is_file():
        return merged / "missing"  # publish() says there is nothing to push, before any upload
    staging = Path(tempfile.mkdtemp(prefix="merged-upload-")) / "merged"
    staging.mkdir()
    for file in merged.iterdir():
        if file.is_file() and file.name != "README.md":
            (staging / file.name).symlink_to(file.resolve())
    shutil.copy(card, staging / "README.md")
    return staging


def _track_evaluation(context, tracker: MlflowTracker, manifest: dict, evaluation, out: Path,
                      eval_report: Path) -> dict:
    """The evaluation into the MLflow run that trained the adapter (a new run named after this Dagster run when
    the training was not tracked): overall and per-field scores, win rates, the card and the report's files."""
    run_id = manifest.get("mlflow_run_id")
    if not run_id:
        run_id = tracker.run_for(context.run.run_id)
        tracker.log_params(run_id, manifest["training"], prefix="training.")
    comparison, wins = evaluation.comparison, evaluation.win_rates
    metrics = {}
    for row in comparison.itertuples():
        prefix = f"eval.{row.metric}" if row.field == "all" else f"eval.{row.field}.{row.metric}"
        for column in ("base", "fine_tuned", "delta", "delta_ci_low", "delta_ci_high", "improvement_pct"):
            metrics[f"{prefix}.{column}"] = getattr(row, column)
    for row in wins.itertuples():
        prefix = f"win_rate_vs_{row.opponent}" if row.field == "all" else f"win_rate.{row.field}.vs_{row.opponent}"
        metrics[prefix] = row.win_rate
        metrics[f"{prefix}.ci_low"], metrics[f"{prefix}.ci_high"] = row.win_rate_ci_low, row.win_rate_ci_high
        metrics[f"{prefix}.length_controlled"] = row.lc_win_rate
    tracker.log_metrics(run_id, metrics)
    tracker.tag(run_id, {DAGSTER_RELEASE_RUN_TAG: context.run.run_id})
    tracker.client.log_artifact(run_id, str(out / "model" / "README.md"), "adapter")
    tracker.log_artifacts(run_id, eval_report, "eval_report")
    tracker.finish(run_id)
    return {"mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)), "mlflow_metrics": len(metrics)}
