"""Assets of the questions stage: subdomains -> raw_questions (per field and generation round) ->
question_clusters (all fields, all rounds) -> deduped_questions (per field)."""

import dagster as dg
import pandas as pd

from research_tuner.checks import publish_if_checks_pass
from research_tuner.executors import CLUSTERS_POOL, TEACHER_POOL, TEACHER_RETRY, no_retry_on_config_error
from research_tuner.interrupts import stop_on_interrupt
from research_tuner.lake import (LOST_PARTITIONS_OK, LakeReadError, ParquetLakeIOManager, published_partitions,
                                 read_partition, stored_frame)
from research_tuner.lib.curation.curate import counts_per_field, curate_questions, gate_summary
from research_tuner.lib.curation.dedup import (REMOVED_PAIRS, dedup_summary, kept_before, kept_questions,
                                               removed_pairs, restore_rounds)
from research_tuner.lib.generation.questions import generate_questions
from research_tuner.lib.shared.similarity.pairs import KINDS
from research_tuner.lib.shared.taxonomy import subdomain_rows
from research_tuner.lib.teacher.base import Usage
from research_tuner.lib.teacher.endpoint import display_url
from research_tuner.metadata import ProgressLogger, counts_by, preview, usage_metadata
from research_tuner.partitions import (field_and_round, field_partitions, field_round_partitions, round_number,
                                      round_partitions)
from research_tuner.resources import PipelineSettings, TeacherResource

GROUP = "questions"


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_round_partitions,
    description="The subdomains a round asks the teacher about: the field's, from the taxonomy data file (the first "
    "N when the profile limits them), kept per round as the record of what that round asked.",
)
def subdomains(context: dg.AssetExecutionContext, settings: PipelineSettings) -> pd.DataFrame:
    profile = settings.resolve()
    field, _ = field_and_round(context.partition_key)
    frame = subdomain_rows(field, profile.generation.subdomains_per_field)
    context.add_output_metadata({"num_rows": len(frame), "subdomains": ", ".join(frame["subdomain"]),
                                 "profile": profile.name})
    return frame


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_round_partitions,
    retry_policy=TEACHER_RETRY,
    pool=TEACHER_POOL,
    description="Research questions the teacher wrote for each subdomain in one generation round, one row per "
    "parsed question. The round is part of every seed: a new round asks for new questions, and never rewrites an "
    "earlier round's file.",
)
@stop_on_interrupt
def raw_questions(
    context: dg.AssetExecutionContext, settings: PipelineSettings, teacher: TeacherResource, subdomains: pd.DataFrame
) -> pd.DataFrame:
    profile = settings.resolve()
    field, round_key = field_and_round(context.partition_key)
    round_ = round_number(round_key)
    usage = Usage()
    with no_retry_on_config_error():
        client = teacher.get(settings)
        frame = generate_questions(
            client,
            field,
            subdomains["subdomain"].tolist(),
            profile.teacher,
            profile.generation.questions_per_subdomain,
            usage,
            progress=ProgressLogger(context, "question requests"),
            generation_round=round_,
        )
    if frame.empty:
        raise RuntimeError(
            f"the teacher ({client.model!r} at {display_url(client.endpoint)}) produced no usable question for "
            f"{field} in round {round_}: {usage.failure_reasons or 'no response'}; see the run log"
        )
    context.add_output_metadata({
        "num_rows": len(frame),
        "generation_round": round_,
        "per_subdomain": counts_by(frame, "subdomain"),
        "preview": preview(frame, ["subdomain", "question"]),
        **usage_metadata(usage, profile.teacher),
    })
    return frame


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    pool=CLUSTERS_POOL,
    description="Every question of every field and round with its near-duplicate cluster: exact, lexical (MinHash/LSH) "
    "and semantic (sentence-embedding) duplicates found across subdomains and fields, one kept per cluster, and "
    "for each removed question the kept one it duplicates, the matching pair, its kind and similarity (the audit "
    "table). Before the search, content gates reject what is not a research question of its subdomain (too short "
    "or long, not a question, assistant talk or boilerplate, self-reference, repetition, off topic); those rows stay "
    "in the audit with keep false, the gate and its reason.",
    # a round whose raw_questions file is lost does not block the others: its rows come from the last clusters
    ins={"raw_questions": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(),
                                     metadata={LOST_PARTITIONS_OK: True})},
    check_specs=[dg.AssetCheckSpec("one_kept_per_cluster", asset="question_clusters", blocking=True,
                                   description="Each cluster keeps exactly one question; removed ones point at it.")],
)
def question_clusters(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    io_manager: dg.ResourceParam[ParquetLakeIOManager],
    teacher: TeacherResource,
    raw_questions: pd.DataFrame,
):
    profile = settings.resolve()
    cfg, gates = profile.dedup, profile.gates.questions
    earlier = stored_frame(io_manager, "question_clusters", log=context.log)
    raw_questions = with_unlisted_rounds(context, io_manager, raw_questions)
    read = set(zip(raw_questions["field"], raw_questions["generation_round"].astype(int)))
    published = [field_and_round(key) for key in published_partitions(io_manager, "raw_questions")]
    lost = {(field, round_number(round_)) for field, round_ in published} - read
    raw_questions, restored, unrecoverable = restore_rounds(raw_questions, earlier, lost)
    if unrecoverable:  # clustering without them would drop those rounds' questions from every later step
        raise dg.Failure(description=f"raw_questions of {', '.join(unrecoverable)} were published but cannot be "
                         "read (see the errors above for each file and its repair command), and no earlier "
                         "question_clusters holds them", allow_retries=False)
    if restored:
        context.log.error(f"raw_questions of {', '.join(restored)} could not be read (see above): their questions "
                          "from the last question_clusters are used, so no round loses its questions")
    previously_kept = kept_before(earlier, raw_questions)
    usage = Usage()
    with no_retry_on_config_error():
        judge = teacher.get(settings) if cfg.teacher_borderline and cfg.semantic else None
        audit, pairs = curate_questions(raw_questions, cfg, gates, previously_kept, teacher=judge, usage=usage)
    summary = dedup_summary(audit)
    removed = removed_pairs(audit)
    cross_field = removed[removed["field"] != removed["duplicate_of_field"]]
    per_field = counts_per_field(audit)
    rejected = audit[audit["gate"].notna()]
    near = removed[removed["kind"] != "exact"]
    output = dg.Output(audit, metadata={
        "num_rows": len(audit),
        "rounds": ", ".join(str(r) for r in sorted(raw_questions["generation_round"].astype(int).unique())),
        "rounds_restored_from_last_clusters": ", ".join(restored) or "none",
        "kept_from_earlier_rounds": int((audit["keep"] & audit["question_id"].isin(previously_kept)).sum()),
        **summary,
        **gate_summary(audit),
        "rejected_preview": preview(rejected, ["field", "question", "gate", "gate_reason"], rows=10, width=120),
        "removed_across_fields": len(cross_field),
        "pairs_found": dg.MetadataValue.json({k: int((pairs.frame()["kind"] == k).sum()) for k in KINDS}),
        "per_field": dg.MetadataValue.md(per_field.to_markdown()),
        "closest_removed_pairs": preview(near, REMOVED_PAIRS.columns, rows=8, width=120),
        "borderline_removed_pairs": preview(near.iloc[::-1], REMOVED_PAIRS.columns, rows=8, width=120),
        "thresholds": dg.MetadataValue.json({"lexical_jaccard": cfg.lexical_threshold, "shingle_words": cfg.shingle_words,
                                             "semantic_cosine": cfg.semantic_threshold if cfg.semantic else None,
                                             "semantic_overlap_slope": cfg.semantic_overlap_slope,
                                             "semantic_max_threshold": cfg.semantic_max_threshold,
                                             "embedding_model": cfg.embedding_model if cfg.semantic else None}),
        "gate_settings": dg.MetadataValue.json(gates.model_dump()),
        **(usage_metadata(usage, profile.teacher) if judge is not None else {}),
    })
    kept_per_cluster = audit[audit["gate"].isna()].groupby("cluster")["keep"].sum()
    kept_ids = set(audit.loc[audit["keep"], "question_id"])
    dangling = audit.loc[~audit["keep"], "duplicate_of"].dropna().map(lambda q: q not in kept_ids).sum()
    yield from publish_if_checks_pass(context, output, [dg.AssetCheckResult(
        check_name="one_kept_per_cluster",
        passed=bool(len(audit) and (kept_per_cluster == 1).all() and dangling == 0),
        metadata={"clusters": len(kept_per_cluster), "clusters_not_keeping_one": int((kept_per_cluster != 1).sum()),
                  "removed_pointing_at_a_removed_question": int(dangling)},
    )])


def with_unlisted_rounds(context, io_manager, raw_questions: pd.DataFrame) -> pd.DataFrame:
    """The lake is the record of which rounds exist: a round published there that this Dagster instance does not
    list (a lake written by another instance, or by the CLI's throwaway one) is read too, and added to the
    instance's generation_round partitions, so no question is left out because an instance forgot it."""
    listed = set(context.instance.get_dynamic_partitions(round_partitions.name))
    unlisted = sorted(k for k in published_partitions(io_manager, "raw_questions") if field_and_round(k)[1] not in listed)
    if not unlisted:
        return raw_questions
    frames = [raw_questions]
    for key in unlisted:
        try:
            frames.append(read_partition(io_manager.root, "raw_questions", key))
        except LakeReadError as exc:  # left to the lost-round handling below
            context.log.error(exc.description)
    rounds = sorted({field_and_round(k)[1] for k in unlisted}, key=round_number)
    context.instance.add_dynamic_partitions(round_partitions.name, rounds)
    context.log.warning(f"the lake holds raw_questions of round(s) {', '.join(rounds)} that this instance did not "
                        "list: read them, and added the rounds to its generation_round partitions")
    return pd.concat(frames, ignore_index=True)


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
    kept, mine = kept_questions(question_clusters, field)
    if mine.empty:
        raise ValueError(f"question_clusters has no question of {field}: materialize raw_questions for {field} "
                         "and then question_clusters first")
    removed = removed_pairs(question_clusters)
    removed = removed[removed["field"] == field]
    rejected = mine[mine["gate"].notna()] if "gate" in mine else mine.iloc[:0].assign(gate=None, gate_reason=None)
    output = dg.Output(kept, metadata={
        "num_rows": len(kept),
        "rows_in": len(mine),
        "rejected_by_gates": len(rejected),
        "rejected_per_gate": counts_by(rejected, "gate"),
        "rejected_preview": preview(rejected, ["subdomain", "question", "gate", "gate_reason"], rows=8, width=120),
        **{f"removed_{kind}": int((removed["kind"] == kind).sum()) for kind in KINDS},
        "removed_as_duplicate_of_another_field": int((removed["duplicate_of_field"] != field).sum()),
        "removed_preview": preview(removed, REMOVED_PAIRS.columns, rows=8, width=120),
    })
    yield from publish_if_checks_pass(context, output, [dg.AssetCheckResult(
        check_name="unique_questions",
        passed=bool(len(kept) and kept["question_id"].is_unique),
        metadata={"rows": len(kept), "duplicate_ids": int(kept["question_id"].duplicated().sum())},
    )])
