"""Assets of the approaches stage: deduped_questions -> approaches -> dataset_split (per field)."""

from collections import Counter

import dagster as dg
import pandas as pd

from research_tuner.checks import publish_if_checks_pass
from research_tuner.executors import TEACHER_POOL, TEACHER_RETRY, no_retry_on_config_error
from research_tuner.interrupts import stop_on_interrupt
from research_tuner.lake import ParquetLakeIOManager, stored_frame
from research_tuner.lib.generation.approach_gates import APPROACH_GATES
from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.curation.split import (
    DATASET_SPLIT,
    SPLIT_SIDES,
    SPLIT_TOLERANCE,
    leaking_pairs,
    split_by_subdomain,
    split_deviation,
)
from research_tuner.lib.shared.sections import missing_sections
from research_tuner.lib.shared.similarity.pairs import clusters_of, duplicate_pairs
from research_tuner.lib.teacher.base import Usage
from research_tuner.metadata import ProgressLogger, preview, usage_metadata
from research_tuner.partitions import field_partitions
from research_tuner.resources import PipelineSettings, TeacherResource

GROUP = "approaches"


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_partitions,
    retry_policy=TEACHER_RETRY,
    pool=TEACHER_POOL,
    # a backfill of many fields is one run: every field's requests share the teacher's batches, and a rejected
    # section of one field rides in the same retry pass as the others' (the local teacher loads once)
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="A research approach per kept question: Markdown with the paper's 7 sections, each with substance "
    "(no boilerplate, injection, thin or copied section) and on the question's topic; a rejected approach is asked "
    "again with a new seed, then recorded as a failure with its reason.",
    check_specs=[
        dg.AssetCheckSpec("every_approach_has_7_sections", asset="approaches", blocking=True,
                          description="A row missing a section would teach the student a broken format."),
        dg.AssetCheckSpec("no_failed_approaches", asset="approaches",
                          description="Questions whose approach stayed invalid after the retries (not written)."),
    ],
)
@stop_on_interrupt
def approaches(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    teacher: TeacherResource,
    deduped_questions: pd.DataFrame,
):
    profile = settings.resolve()
    usage = Usage()
    rejections: Counter = Counter()
    with no_retry_on_config_error():
        valid, failed = generate_approaches(
            teacher.get(settings), deduped_questions, profile.teacher, usage,
            progress=ProgressLogger(context, "approach requests"),
            gates=profile.gates.approaches, dedup=profile.dedup, rejections=rejections,
        )
    incomplete = valid[[bool(missing_sections(a)) for a in valid["approach"]]]
    fields = sorted(context.partition_keys)
    rows_per_field = {field: int((valid["field"] == field).sum()) for field in fields}
    empty_fields = [field for field, rows in rows_per_field.items() if not rows]
    output = dg.Output(valid, metadata={
        "num_rows": len(valid),
        "num_failed": len(failed),
        **({"rows_per_field": dg.MetadataValue.json(rows_per_field)} if len(fields) > 1 else {}),
        "mean_approach_words": float(valid["approach"].str.split().str.len().mean()) if len(valid) else 0.0,
        "preview": preview(valid, ["subdomain", "question", "approach"], rows=4, width=400),
        **({"failures": preview(failed, ["subdomain", "question", "error"], rows=8, width=200)} if len(failed) else {}),
        "failed_per_reason": dg.MetadataValue.json(
            {str(k): int(v) for k, v in failed["error"].str.split(":").str[0].value_counts().items()}),
        "rejected_per_gate_with_retries": dg.MetadataValue.json(
            {g: int(rejections.get(g, 0)) for g in ("format", *APPROACH_GATES, "grade")}),
        **usage_metadata(usage, profile.teacher),
    })
    yield from publish_if_checks_pass(context, output, [
        dg.AssetCheckResult(
            check_name="every_approach_has_7_sections",
            passed=not empty_fields and incomplete.empty,  # a field with no approach has nothing to train on
            metadata={"rows": len(valid), "rows_missing_sections": len(incomplete),
                      "fields_without_approaches": ", ".join(empty_fields) or "none"},
        ),
        dg.AssetCheckResult(
            check_name="no_failed_approaches",
            passed=failed.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failed": len(failed), "questions": len(deduped_questions)},
        ),
    ])


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="Question/approach pairs split 75/25 into train and validation, stratified by subdomain, "
    "deterministic given the seed, stable across runs (rows already placed keep their side), and with "
    "near-duplicates placed together.",
    check_specs=[
        dg.AssetCheckSpec("split_ratio_per_subdomain", asset="dataset_split", blocking=True,
                          description=f"Validation share within {SPLIT_TOLERANCE} of the target per subdomain, "
                          "or the validation count within one question of the target count."),
        dg.AssetCheckSpec("schema_and_rows", asset="dataset_split", blocking=True),
        dg.AssetCheckSpec("no_near_duplicate_leakage", asset="dataset_split", blocking=True,
                          description="No exact, lexical or semantic duplicate pair among the split's questions "
                          "has one side in train and the other in validation."),
    ],
)
def dataset_split(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    io_manager: dg.ResourceParam[ParquetLakeIOManager],
    approaches: pd.DataFrame,
):
    profile = settings.resolve()
    cfg = profile.split
    earlier = stored_frame(io_manager, "dataset_split", context.partition_key, log=context.log)
    previous = {}
    if earlier is not None:
        same_rule = ("split_seed" in earlier and (earlier["split_seed"] == cfg.seed).all()
                     and (earlier["validation_fraction"] == cfg.validation_fraction).all())
        if same_rule:
            previous = dict(zip(earlier["question_id"], earlier["split"]))
        else:
            context.log.warning("the stored split used another seed or fraction: splitting afresh")
    rows = approaches.reset_index(drop=True)
    # one search for the near-duplicate pairs: they place groups whole, and the leakage check reads them back
    pairs = duplicate_pairs(rows["question"], profile.dedup)
    groups = clusters_of(len(rows), pairs)
    frame = split_by_subdomain(rows, cfg.validation_fraction, cfg.seed, groups=groups, previous=previous)
    frame = DATASET_SPLIT.select(frame.assign(split_seed=cfg.seed, validation_fraction=cfg.validation_fraction))
    kept_side = frame["question_id"].map(previous)
    moved = int((kept_side.notna() & (kept_side != frame["split"])).sum())
    table = split_deviation(frame, cfg.validation_fraction)
    group_sizes = pd.Series(groups).value_counts()
    output = dg.Output(frame, metadata={
        "num_rows": len(frame),
        "train": int((frame["split"] == "train").sum()),
        "validation": int((frame["split"] == "validation").sum()),
        "per_subdomain": dg.MetadataValue.md(table.to_markdown()),
        "kept_from_previous_split": int(kept_side.notna().sum()),
        "moved_from_previous_split": moved,
        "near_duplicate_groups_placed_whole": int((group_sizes > 1).sum()),
    })
    leaks = leaking_pairs(frame, pairs)
    yield from publish_if_checks_pass(context, output, [
        dg.AssetCheckResult(
            check_name="split_ratio_per_subdomain",
            passed=bool(len(table) and table["within_tolerance"].all()),
            metadata={"largest_share_deviation": float((table["validation_share"] - cfg.validation_fraction).abs()
                                                       .max()) if len(table) else 1.0,
                      "subdomains_out_of_tolerance": int((~table["within_tolerance"]).sum()),
                      "target": cfg.validation_fraction, "tolerance": SPLIT_TOLERANCE},
        ),
        dg.AssetCheckResult(
            check_name="schema_and_rows",
            passed=bool(len(frame) > 0 and frame.notna().all().all() and set(frame["split"]) <= set(SPLIT_SIDES)),
            metadata={"rows": len(frame)},
        ),
        dg.AssetCheckResult(
            check_name="no_near_duplicate_leakage",
            passed=leaks.empty,
            metadata={"leaking_pairs": len(leaks), **({"preview": preview(leaks)} if len(leaks) else {})},
        ),
    ])
