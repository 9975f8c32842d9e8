"""Asset jobs: one per stage of the graph, so each can be launched (and rerun) on its own."""

import dagster as dg

round_job = dg.define_asset_job(
    "round_job",
    selection=dg.AssetSelection.assets("subdomains", "raw_questions"),
    description="One generation round for one field: the teacher writes its questions into a new "
    "raw_questions/<field>/<round>.parquet; earlier rounds are never rewritten. Then run data_job for the field "
    "(the curate_new_rounds sensor does it when the daemon runs).",
)
data_job = dg.define_asset_job(
    "data_job",
    selection=dg.AssetSelection.assets("question_clusters", "deduped_questions", "approaches", "dataset_split"),
    description="Every round's questions through the train/validation split, for one field. question_clusters "
    "(all fields, all rounds; its pool lets one run at a time in) runs inside it, so questions other fields or "
    "earlier rounds already have are removed from the new round, never the earlier one.",
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

ALL_JOBS = [round_job, data_job, training_job, evaluation_job, report_job, release_job]
