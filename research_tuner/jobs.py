"""Asset jobs: one per stage of the graph, so each can be launched (and rerun) on its own."""

import dagster as dg

data_job = dg.define_asset_job(
    "data_job",
    selection=dg.AssetSelection.groups("questions", "approaches"),
    description="Subdomains through the train/validation split, for one field. question_clusters (all fields) "
    "runs inside it, so duplicates of questions other fields already have are removed.",
)
training_job = dg.define_asset_job(
    "training_job", selection=dg.AssetSelection.assets("lora_adapter"), description="Train the LoRA adapter."
)
evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets("eval_generations", "eval_judgements", "eval_preferences", "eval_scores"),
    description="Base vs fine-tuned answers, the optional judge's grades and pairwise verdicts, and their scores, "
    "for one field.",
)
report_job = dg.define_asset_job(
    "report_job", selection=dg.AssetSelection.assets("eval_report"), description="Tables and figures over all fields."
)

release_job = dg.define_asset_job(
    "release_job", selection=dg.AssetSelection.assets("model_release"),
    description="Model and dataset cards, the dataset export, the evaluation in MLflow, the optional Hub upload.",
)

ALL_JOBS = [data_job, training_job, evaluation_job, report_job, release_job]
