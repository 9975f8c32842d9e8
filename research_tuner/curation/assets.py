"""Assets of the curation stage: raw_questions -> deduped_questions; approaches -> dataset_split."""
import dagster as dg
import pandas as pd

from research_tuner.lib.dedup import remove_exact_duplicates
from research_tuner.lib.split import split_by_subdomain
from research_tuner.metadata import preview
from research_tuner.partitions import field_partitions
from research_tuner.resources import PipelineSettings

GROUP = "curation"
#: How far a subdomain's validation share may stray from the target (rounding on small counts).
SPLIT_TOLERANCE = 0.15
SPLIT_COLUMNS = ["question_id", "field", "subdomain", "question", "approach", "split"]


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="Questions with duplicates removed (same text after normalising case, punctuation, spacing).",
    check_specs=[dg.AssetCheckSpec("unique_questions", asset="deduped_questions", blocking=True)],
)
def deduped_questions(context: dg.AssetExecutionContext, raw_questions: pd.DataFrame):
    kept, removed = remove_exact_duplicates(raw_questions)
    yield dg.Output(kept, metadata={
        "num_rows": len(kept),
        "rows_in": len(raw_questions),
        "removed_exact": len(removed),
        "removed_preview": preview(removed, ["question", "duplicate_of", "kind"]),
    })
    yield dg.AssetCheckResult(
        check_name="unique_questions",
        passed=bool(len(kept) and kept["question_id"].is_unique),
        metadata={"rows": len(kept), "duplicate_ids": int(kept["question_id"].duplicated().sum())},
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="Question/approach pairs split 75/25 into train and validation, stratified by subdomain.",
    check_specs=[
        dg.AssetCheckSpec("split_ratio_per_subdomain", asset="dataset_split", blocking=True,
                          description=f"Validation share within {SPLIT_TOLERANCE} of the target per subdomain."),
        dg.AssetCheckSpec("schema_and_rows", asset="dataset_split", blocking=True),
    ],
)
def dataset_split(context: dg.AssetExecutionContext, settings: PipelineSettings, approaches: pd.DataFrame):
    cfg = settings.resolve().split
    frame = split_by_subdomain(approaches, cfg.validation_fraction, cfg.seed)[SPLIT_COLUMNS]
    per_subdomain = frame.groupby("subdomain")["split"].value_counts().unstack(fill_value=0)
    for col in ("train", "validation"):
        if col not in per_subdomain:
            per_subdomain[col] = 0
    share = per_subdomain["validation"] / per_subdomain.sum(axis=1)
    worst = float((share - cfg.validation_fraction).abs().max()) if len(share) else 1.0
    yield dg.Output(frame, metadata={
        "num_rows": len(frame),
        "train": int((frame["split"] == "train").sum()),
        "validation": int((frame["split"] == "validation").sum()),
        "per_subdomain": dg.MetadataValue.md(per_subdomain[["train", "validation"]].to_markdown()),
    })
    yield dg.AssetCheckResult(
        check_name="split_ratio_per_subdomain",
        passed=worst <= SPLIT_TOLERANCE,
        metadata={"largest_deviation": worst, "target": cfg.validation_fraction},
    )
    yield dg.AssetCheckResult(
        check_name="schema_and_rows",
        passed=bool(len(frame) > 0 and frame[SPLIT_COLUMNS].notna().all().all()),
        metadata={"rows": len(frame)},
    )
