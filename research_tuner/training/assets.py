"""The `lora_adapter` asset: TRL + PEFT training on all fields' train rows, resumable from checkpoints."""

import json
import shutil

import dagster as dg
import pandas as pd

from research_tuner.executors import TORCH_STEP_TAGS
from research_tuner.metadata import image, preview
from research_tuner.resources import PipelineSettings

GROUP = "training"


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    op_tags=TORCH_STEP_TAGS,
    description="LoRA adapter (PEFT) trained with TRL's SFTTrainer on every field's train rows; "
    "the folder holds adapter/, tokenizer/, training_log.parquet, loss_curve.png and manifest.json, "
    "and merged/ (base + adapter as one model) when training.export_merged is set.",
    ins={"dataset_split": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
)
def lora_adapter(context: dg.AssetExecutionContext, settings: PipelineSettings, dataset_split: pd.DataFrame):
    from research_tuner.lib.training.train import train_lora  # torch-heavy: imported when training runs

    cfg = settings.resolve().training
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

    result = train_lora(train, validation, cfg, work, progress=progress, merge=cfg.export_merged)
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
    }
    manifest = {
        "base_model": cfg.base_model,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "fields": sorted(dataset_split["field"].unique().tolist()),
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
    (export / "manifest.json").write_text(json.dumps(manifest, indent=2))
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
    })
    return export
