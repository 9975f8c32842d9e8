"""Assets of the curation stage: raw_questions (all fields) -> question_clusters -> deduped_questions;
approaches -> dataset_split."""
import dagster as dg
import pandas as pd

from research_tuner.lake import ParquetLakeIOManager, stored_frame
from research_tuner.lib.dedup import KINDS, cluster_questions, clusters_of, dedup_summary, duplicate_pairs
from research_tuner.lib.split import split_by_subdomain, validation_target
from research_tuner.metadata import preview
from research_tuner.partitions import field_partitions
from research_tuner.resources import PipelineSettings

GROUP = "curation"
#: How far a subdomain's validation share may stray from the target. Small subdomains may instead be off
#: by one question from the target count (rounding, and near-duplicate groups are placed whole).
SPLIT_TOLERANCE = 0.15
SPLIT_COLUMNS = ["question_id", "field", "subdomain", "question", "approach", "split"]
RAW_COLUMNS = ["question_id", "field", "subdomain", "question", "teacher_model", "generation_round"]
PAIR_COLUMNS = ["field", "question", "kind", "similarity", "duplicate_of_field", "duplicate_of_question"]


def _removed_pairs(audit: pd.DataFrame) -> pd.DataFrame:
    """Removed questions side by side with the question that matched them, most similar first."""
    removed = audit[~audit["keep"]]
    by_id = audit.drop_duplicates("question_id").set_index("question_id")
    matched = by_id.reindex(removed["matched_question_id"])
    return pd.DataFrame({
        "field": removed["field"].to_numpy(), "question": removed["question"].to_numpy(),
        "kind": removed["kind"].to_numpy(), "similarity": removed["similarity"].round(3).to_numpy(),
        "duplicate_of_field": matched["field"].to_numpy(), "duplicate_of_question": matched["question"].to_numpy(),
    }).sort_values("similarity", ascending=False, kind="stable")


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    description="Every question of every field with its near-duplicate cluster: exact, lexical (MinHash/LSH) "
    "and semantic (MiniLM) duplicates found across subdomains and fields, one kept per cluster, and for each "
    "removed question the kept one it duplicates, the matching pair, its kind and similarity (the audit table).",
    ins={"raw_questions": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    check_specs=[dg.AssetCheckSpec("one_kept_per_cluster", asset="question_clusters", blocking=True,
                                   description="Each cluster keeps exactly one question; removed ones point at it.")],
)
def question_clusters(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    io_manager: dg.ResourceParam[ParquetLakeIOManager],
    raw_questions: pd.DataFrame,
):
    cfg = settings.resolve().dedup
    earlier = stored_frame(io_manager, "question_clusters")
    previously_kept = frozenset(earlier.loc[earlier["keep"], "question_id"]) if earlier is not None else frozenset()
    audit, pairs = cluster_questions(raw_questions, cfg, previously_kept)
    summary = dedup_summary(audit)
    removed = _removed_pairs(audit)
    cross_field = removed[removed["field"] != removed["duplicate_of_field"]]
    per_field = audit.groupby("field").agg(questions_in=("keep", "size"), kept=("keep", "sum"))
    per_field["removed"] = per_field["questions_in"] - per_field["kept"]
    near = removed[removed["kind"] != "exact"]
    yield dg.Output(audit, metadata={
        "num_rows": len(audit),
        **summary,
        "removed_across_fields": len(cross_field),
        "pairs_found": dg.MetadataValue.json({k: int((pairs.frame()["kind"] == k).sum()) for k in KINDS}),
        "per_field": dg.MetadataValue.md(per_field.to_markdown()),
        "closest_removed_pairs": preview(near, PAIR_COLUMNS, rows=8, width=120),
        "borderline_removed_pairs": preview(near.iloc[::-1], PAIR_COLUMNS, rows=8, width=120),
        "thresholds": dg.MetadataValue.json({"lexical_jaccard": cfg.lexical_threshold, "shingle_words": cfg.shingle_words,
                                             "semantic_cosine": cfg.semantic_threshold if cfg.semantic else None,
                                             "semantic_overlap_slope": cfg.semantic_overlap_slope,
                                             "semantic_max_threshold": cfg.semantic_max_threshold}),
    })
    kept_per_cluster = audit.groupby("cluster")["keep"].sum()
    kept_ids = set(audit.loc[audit["keep"], "question_id"])
    dangling = audit.loc[~audit["keep"], "duplicate_of"].map(lambda q: q not in kept_ids).sum()
    yield dg.AssetCheckResult(
        check_name="one_kept_per_cluster",
        passed=bool(len(audit) and (kept_per_cluster == 1).all() and dangling == 0),
        metadata={"clusters": len(kept_per_cluster), "clusters_not_keeping_one": int((kept_per_cluster != 1).sum()),
                  "removed_pointing_at_a_removed_question": int(dangling)},
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="The field's questions that question_clusters kept: no exact, lexical or semantic duplicate "
    "of any question in any field.",
    check_specs=[dg.AssetCheckSpec("unique_questions", asset="deduped_questions", blocking=True)],
)
def deduped_questions(context: dg.AssetExecutionContext, question_clusters: pd.DataFrame):
    field = context.partition_key
    mine = question_clusters[question_clusters["field"] == field]
    if mine.empty:
        raise ValueError(f"question_clusters has no question of {field}: materialize raw_questions for {field} "
                         "and then question_clusters first")
    kept = mine[mine["keep"]][[c for c in RAW_COLUMNS if c in mine.columns]].reset_index(drop=True)
    removed = _removed_pairs(question_clusters)
    removed = removed[removed["field"] == field]
    yield dg.Output(kept, metadata={
        "num_rows": len(kept),
        "rows_in": len(mine),
        **{f"removed_{kind}": int((removed["kind"] == kind).sum()) for kind in KINDS},
        "removed_as_duplicate_of_another_field": int((removed["duplicate_of_field"] != field).sum()),
        "removed_preview": preview(removed, PAIR_COLUMNS, rows=8, width=120),
    })
    yield dg.AssetCheckResult(
        check_name="unique_questions",
        passed=bool(len(kept) and kept["question_id"].is_unique),
        metadata={"rows": len(kept), "duplicate_ids": int(kept["question_id"].duplicated().sum())},
    )


def split_deviation(frame: pd.DataFrame, validation_fraction: float) -> pd.DataFrame:
    """Per subdomain: train, validation, target validation count, share, and whether it is within tolerance."""
    table = frame.groupby("subdomain")["split"].value_counts().unstack(fill_value=0)
    for col in ("train", "validation"):
        if col not in table:
            table[col] = 0
    table = table[["train", "validation"]].copy()
    size = table.sum(axis=1)
    table["target"] = [validation_target(int(s), validation_fraction) for s in size]
    table["validation_share"] = (table["validation"] / size).round(3)
    table["within_tolerance"] = ((table["validation_share"] - validation_fraction).abs() <= SPLIT_TOLERANCE) | (
        (table["validation"] - table["target"]).abs() <= 1)
    return table


def leaking_pairs(frame: pd.DataFrame, cfg) -> pd.DataFrame:
    """Near-duplicate pairs (recomputed from the questions) with one side in train and one in validation."""
    pairs = duplicate_pairs(frame["question"], cfg).frame()
    split = frame["split"].to_numpy()
    crossing = pairs[split[pairs["a"].to_numpy()] != split[pairs["b"].to_numpy()]]
    return pd.DataFrame({"question_a": frame["question"].to_numpy()[crossing["a"].to_numpy()],
                         "question_b": frame["question"].to_numpy()[crossing["b"].to_numpy()],
                         "kind": crossing["kind"].to_numpy(), "similarity": crossing["similarity"].to_numpy()})


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
                          description="No exact, lexical or semantic duplicate pair (recomputed from the "
                          "questions) has one side in train and the other in validation."),
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
    earlier = stored_frame(io_manager, "dataset_split", context.partition_key)
    previous = {}
    if earlier is not None:
        same_rule = ("split_seed" in earlier and (earlier["split_seed"] == cfg.seed).all()
                     and (earlier["validation_fraction"] == cfg.validation_fraction).all())
        if same_rule:
            previous = dict(zip(earlier["question_id"], earlier["split"]))
        else:
            context.log.warning("the stored split used another seed or fraction: splitting afresh")
    rows = approaches.reset_index(drop=True)
    groups = clusters_of(len(rows), duplicate_pairs(rows["question"], profile.dedup))
    frame = split_by_subdomain(rows, cfg.validation_fraction, cfg.seed, groups=groups, previous=previous)
    frame = frame[SPLIT_COLUMNS].assign(split_seed=cfg.seed, validation_fraction=cfg.validation_fraction)
    kept_side = frame["question_id"].map(previous)
    moved = int((kept_side.notna() & (kept_side != frame["split"])).sum())
    table = split_deviation(frame, cfg.validation_fraction)
    group_sizes = pd.Series(groups).value_counts()
    yield dg.Output(frame, metadata={
        "num_rows": len(frame),
        "train": int((frame["split"] == "train").sum()),
        "validation": int((frame["split"] == "validation").sum()),
        "per_subdomain": dg.MetadataValue.md(table.to_markdown()),
        "kept_from_previous_split": int(kept_side.notna().sum()),
        "moved_from_previous_split": moved,
        "near_duplicate_groups_placed_whole": int((group_sizes > 1).sum()),
    })
    yield dg.AssetCheckResult(
        check_name="split_ratio_per_subdomain",
        passed=bool(len(table) and table["within_tolerance"].all()),
        metadata={"largest_share_deviation": float((table["validation_share"] - cfg.validation_fraction).abs().max())
                  if len(table) else 1.0,
                  "subdomains_out_of_tolerance": int((~table["within_tolerance"]).sum()),
                  "target": cfg.validation_fraction, "tolerance": SPLIT_TOLERANCE},
    )
    yield dg.AssetCheckResult(
        check_name="schema_and_rows",
        passed=bool(len(frame) > 0 and frame[SPLIT_COLUMNS].notna().all().all()
                    and set(frame["split"]) <= {"train", "validation"}),
        metadata={"rows": len(frame)},
    )
    leaks = leaking_pairs(frame, profile.dedup)
    yield dg.AssetCheckResult(
        check_name="no_near_duplicate_leakage",
        passed=leaks.empty,
        metadata={"leaking_pairs": len(leaks), **({"preview": preview(leaks)} if len(leaks) else {})},
    )
