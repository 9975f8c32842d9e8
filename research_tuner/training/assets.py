"""The `lora_adapter` asset: TRL + PEFT training on all fields' train rows, resumable from checkpoints."""

import json
import shutil
from contextlib import nullcontext
from pathlib import Path

import dagster as dg
import pandas as pd

from research_tuner.executors import TORCH_POOL, TORCH_STEP_TAGS
from research_tuner.lib.shared.tracking import MlflowTracker
from research_tuner.metadata import image, preview
from research_tuner.resources import PipelineSettings

GROUP = "training"


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    op_tags=TORCH_STEP_TAGS,
    pool=TORCH_POOL,
    description="LoRA adapter (PEFT) trained with TRL's SFTTrainer on every field's train rows; "
    "the folder holds adapter/ (with its model card, README.md), tokenizer/, training_log.parquet, loss_curve.png "
    "and manifest.json, and merged/ (base + adapter as one model) when training.export_merged is set. With "
    "tracking.backend mlflow, an MLflow run named after this Dagster run gets the settings, the loss curve "
    "(TRL's report_to), tokens per second and the adapter.",
    ins={"dataset_split": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
)
def lora_adapter(context: dg.AssetExecutionContext, settings: PipelineSettings, dataset_split: pd.DataFrame):
    from research_tuner.lib.training.card import base_license, hardware_description, model_card
    from research_tuner.lib.training.train import train_lora  # torch-heavy: imported when training runs

    profile = settings.resolve()
    cfg = profile.training
    train = dataset_split[dataset_split["split"] == "train"].reset_index(drop=True)
    validation = dataset_split[dataset_split["split"] == "validation"].reset_index(drop=True)
    if train.empty or validation.empty:
        raise ValueError(f"training needs train and validation rows; got {len(train)} and {len(validation)}")
    # train_lora resumes from checkpoints here only when data and settings match; otherwise it starts over.
    work = settings.work_path("lora_adapter")
    context.log.info(f"training {cfg.base_model} on {len(train)} examples; checkpoints in {work}")

    def progress(event: dict) -> None:
        context.log.info("training: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in event.items()))

    tracker = MlflowTracker(profile.tracking) if profile.tracking.backend == "mlflow" else None
    mlflow_run = tracker.run_for(context.run.run_id) if tracker else None
    with tracker.reporting_to(mlflow_run) if tracker else nullcontext("none") as report_to:
        result = train_lora(train, validation, cfg, work, progress=progress, merge=cfg.export_merged,
                            report_to=report_to)
    export = work / "export"
    if export.exists():
        shutil.rmtree(export)
    export.mkdir()
    shutil.copytree(result.adapter_dir, export / "adapter")
    shutil.copytree(result.tokenizer_dir, export / "tokenizer")
    result.log.to_parquet(export / "training_log.parquet", index=False)
    shutil.copy(result.loss_curve_png, export / "loss_curve.png")
    if result.merged_dir is not None:
        shutil.copytree(result.merged_dir, export / "merged")
    speed = {
        "tokens_per_second": round(result.tokens_per_second, 1) if result.tokens_per_second else None,
        "padding_waste": round(result.padding_waste, 4) if result.padding_waste is not None else None,
        "train_time_s": round(result.train_time_s, 1),
        "precision": result.hardware.precision,
        "attn_implementation": result.hardware.attn_implementation,
        "loss_kernel": result.hardware.loss_kernel,
        "gradient_checkpointing": result.gradient_checkpointing,
        "memory_estimate": result.memory_estimate,
        "threads": result.hardware.threads,
        "processes": result.processes,
        "device": result.device,
        "hardware": hardware_description(result.device),
    }
    manifest = {
        "base_model": cfg.base_model,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "fields": sorted(dataset_split["field"].unique().tolist()),
        "teacher_model": profile.teacher.model,
        "training": cfg.model_dump(mode="json"),
        "result": {
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "tokens_seen": result.tokens_seen,
            "wall_time_s": round(result.wall_time_s, 1),
            "final_train_loss": result.final_train_loss,
            "final_eval_loss": result.final_eval_loss,
            "global_step": result.global_step,
            **speed,
        },
    }
    if mlflow_run:
        manifest["mlflow_run_id"] = mlflow_run
    (export / "manifest.json").write_text(json.dumps(manifest, indent=2))
    local_base = Path(cfg.base_model) if Path(cfg.base_model).is_dir() else None
    card_license = profile.release.license or base_license(cfg.base_model, local_base)
    (export / "adapter" / "README.md").write_text(model_card(manifest, license=card_license))  # replaces PEFT's
    if tracker:
        from research_tuner.lib.training.tracked import log_training

        log_training(tracker, mlflow_run, manifest, export)
        tracker.finish(mlflow_run)
    context.add_output_metadata({
        "base_model": cfg.base_model,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
        "tokens_seen": result.tokens_seen,
        "wall_time_s": round(result.wall_time_s, 1),
        "train_time_s": speed["train_time_s"],
        "tokens_per_second": speed["tokens_per_second"] if speed["tokens_per_second"] is not None else float("nan"),
        "padding_waste": speed["padding_waste"] if speed["padding_waste"] is not None else float("nan"),
        "precision": speed["precision"],
        "attn_implementation": speed["attn_implementation"],
        "loss_kernel": speed["loss_kernel"],
        "gradient_checkpointing": result.gradient_checkpointing,
        "processes": result.processes,
        "merged_model": bool(result.merged_dir),
        "final_train_loss": result.final_train_loss,
        "final_eval_loss": result.final_eval_loss,
        "resumed_from_step": result.resumed_from_step if result.resumed_from_step is not None else -1,
        "device": str(result.device),
        "loss_curve": image(result.loss_curve_png),
        "training_log": preview(result.log, rows=12),
        **({"mlflow_run": dg.MetadataValue.url(tracker.run_url(mlflow_run))} if tracker else {}),
    })
    return export
