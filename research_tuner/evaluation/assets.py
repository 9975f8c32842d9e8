"""Assets of the evaluation stage: eval_generations (the answers) -> eval_judgements (optional pointwise grades) and
eval_preferences (optional pairwise verdicts) -> eval_scores (the metrics, per field) -> eval_report (all fields,
with the verdict)."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from research_tuner.checks import publish_if_checks_pass
from research_tuner.executors import TEACHER_POOL, TEACHER_RETRY, TORCH_POOL, TORCH_STEP_TAGS, no_retry_on_config_error
from research_tuner.interrupts import stop_on_interrupt
from research_tuner.lake import ParquetLakeIOManager, stored_frame
from research_tuner.lib.evaluation import metrics
from research_tuner.lib.evaluation.answers import answer_both
from research_tuner.lib.evaluation.conclusion import verdict_paragraph
from research_tuner.lib.evaluation.judge.grade import SCORE_COLUMNS, empty_judgements, judge_responses
from research_tuner.lib.evaluation.judge.pairwise import empty_preferences, judge_preferences
from research_tuner.lib.evaluation.report import (
    WIN_RATE_FIGURE,
    comparison_table,
    grouped_bars,
    reported_metrics,
    win_rate_bars,
)
from research_tuner.lib.evaluation.sample import evaluation_sample, sample_id
from research_tuner.lib.evaluation.scoring import judged, score_answers
from research_tuner.lib.evaluation.summary import summarise
from research_tuner.lib.evaluation.text_overlap import metric_data_info
from research_tuner.lib.evaluation.win_rate import preference_table
from research_tuner.lib.teacher.base import Usage
from research_tuner.metadata import ProgressLogger, image, preview, usage_metadata
from research_tuner.partitions import field_partitions
from research_tuner.resources import PipelineSettings, TeacherResource

GROUP = "evaluation"


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    op_tags=TORCH_STEP_TAGS,
    pool=TORCH_POOL,
    partitions_def=field_partitions,
    # a backfill of many fields is one run: the model loads once and every field's prompts share its batches
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Base and fine-tuned answers to validation questions (N per subdomain), greedy, same token "
    "limit, with the teacher's approach as the reference. Scored by eval_scores. The sample stays the same "
    "across rounds (sample_id) until evaluation.seed changes.",
    check_specs=[dg.AssetCheckSpec("sample_only_from_validation", asset="eval_generations", blocking=True)],
)
def eval_generations(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    io_manager: dg.ResourceParam[ParquetLakeIOManager],
    dataset_split: pd.DataFrame,
    lora_adapter: Path,
):
    from research_tuner.lib.shared.inference import load_for_inference  # torch-heavy: imported when it runs

    profile = settings.resolve()
    cfg = profile.evaluation
    fields = sorted(context.partition_keys)
    samples, drawn = [], set()
    for field in fields:
        earlier = stored_frame(io_manager, "eval_generations", field, log=context.log)
        if earlier is not None and "sample_seed" in earlier and (earlier["sample_seed"] == cfg.seed).all():
            drawn |= set(earlier["question_id"])  # the same sample as last time, so adapters compare on it
        rows = dataset_split[dataset_split["field"] == field]
        sample = evaluation_sample(rows, cfg.questions_per_subdomain, cfg.seed, drawn)
        if sample.empty:
            raise ValueError(f"no validation questions for {field}: nothing to evaluate")
        samples.append(sample)
    sample = pd.concat(samples, ignore_index=True)
    manifest = json.loads((lora_adapter / "manifest.json").read_text())
    model, tokenizer = load_for_inference(manifest["base_model"], lora_adapter / "adapter",
                                          precision=profile.training.precision)
    generations = answer_both(model, tokenizer, sample, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                              sample_seed=cfg.seed, progress=ProgressLogger(context, "answers"))
    train_ids = set(dataset_split.loc[dataset_split["split"] == "train", "question_id"])
    leaked = sorted(set(generations["question_id"]) & train_ids)
    hit_limit = generations.groupby("model")["finish_reason"].apply(lambda s: float((s == "length").mean()))
    output = dg.Output(generations, metadata={
        "num_rows": len(generations),
        "questions": len(sample),
        "fields": ", ".join(fields),
        "sample_id": sample_id(sample["question_id"]),
        "sample_id_per_field": dg.MetadataValue.json({f: sample_id(s["question_id"]) for f, s in zip(fields, samples)}),
        "kept_from_earlier_sample": int(sample["question_id"].isin(drawn).sum()),
        "base_model": manifest["base_model"],
        "hit_token_limit": dg.MetadataValue.json(hit_limit.round(3).to_dict()),
        "completion_tokens": int(generations["completion_tokens"].sum()),
        "preview": preview(generations, ["model", "question", "response"], width=240),
    })
    yield from publish_if_checks_pass(context, output, [dg.AssetCheckResult(
        check_name="sample_only_from_validation", passed=not leaked, metadata={"train_rows_in_sample": len(leaked)})])


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_partitions,
    retry_policy=TEACHER_RETRY,
    pool=TEACHER_POOL,
    description="Optional LLM-as-judge (evaluation.judge.enabled): the judge (the teacher, or its own endpoint "
    "and model from evaluation.judge) grades every answer, blind to which model wrote it, on the 7 sections "
    "and feasibility (integers 0-5) against the reference approach. "
    "Failed judgements are rows with the reason and no scores. Off: an empty table and no teacher call.",
)
@stop_on_interrupt
def eval_judgements(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    teacher: TeacherResource,
    eval_generations: pd.DataFrame,
) -> pd.DataFrame:
    profile = settings.resolve()
    cfg = profile.evaluation.judge
    if not cfg.enabled:
        context.add_output_metadata({
            "enabled": False, "num_rows": 0,
            "note": "evaluation.judge.enabled is false: nothing was sent and no judge score exists",
        })
        return empty_judgements()
    usage = Usage()
    judge = teacher.get_judge(settings)
    with no_retry_on_config_error():
        table = judge_responses(judge, eval_generations, cfg, usage, progress=ProgressLogger(context, "judgements"))
    ok = table[table["status"] == "ok"]
    failed = table[table["status"] == "failed"]
    per_model = ok.groupby("model")[SCORE_COLUMNS + ["judge_score"]].mean()
    per_model.columns = [c.removeprefix("judge_") if c != "judge_score" else "mean" for c in per_model.columns]
    context.add_output_metadata({
        "enabled": True,
        "judge_model": judge.model,
        "num_rows": len(table),
        "num_failed": len(failed),
        "mean_scores_0_to_5": dg.MetadataValue.md(per_model.round(2).reset_index().to_markdown(index=False)),
        **({"failures": preview(failed, ["question_id", "model", "error"])} if len(failed) else {}),
        **usage_metadata(usage, cfg.teacher_settings(profile.teacher), prefix="judge"),
    })
    return table


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_partitions,
    retry_policy=TEACHER_RETRY,
    pool=TEACHER_POOL,
    description="Optional pairwise preference (evaluation.judge.pairwise): for each question the judge sees two "
    "answers under neutral labels and says which is better (first / second / tie, with a reason), in both "
    "orders; a verdict that flips with the order is a tie, flagged inconsistent. Pairs: fine-tuned vs base, "
    "and fine-tuned vs the teacher's reference (the ceiling). Failed pairs are rows with the reason, never "
    "ties. Off: an empty table and no request.",
)
@stop_on_interrupt
def eval_preferences(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    teacher: TeacherResource,
    eval_generations: pd.DataFrame,
) -> pd.DataFrame:
    profile = settings.resolve()
    cfg = profile.evaluation.judge
    if not cfg.pairwise:
        context.add_output_metadata({
            "enabled": False, "num_rows": 0,
            "note": "evaluation.judge.pairwise is false: nothing was sent and no win rate exists",
        })
        return empty_preferences()
    usage = Usage()
    judge = teacher.get_judge(settings)
    with no_retry_on_config_error():
        table = judge_preferences(judge, eval_generations, cfg, usage, progress=ProgressLogger(context, "verdicts"))
    failed = table[table["outcome"] == "failed"]
    context.add_output_metadata({
        "enabled": True,
        "judge_model": judge.model,
        "judge_is_teacher": not cfg.is_independent(profile.teacher),
        "num_rows": len(table),
        "num_failed": len(failed),
        "win_rates": dg.MetadataValue.md(_win_rate_markdown(preference_table(table))),
        "preview": preview(table, ["opponent", "outcome", "inconsistent", "reason_fine_tuned_first"], width=200),
        **({"failures": preview(failed, ["question_id", "opponent", "error"])} if len(failed) else {}),
        **usage_metadata(usage, cfg.teacher_settings(profile.teacher), prefix="judge"),
    })
    return table


#: The win-rate columns shown in metadata and printed by `research-tuner run` / `table`.
WIN_RATE_COLUMNS = ["field", "opponent", "n", "wins", "ties", "losses", "failed", "win_rate", "win_rate_ci_low",
                    "win_rate_ci_high", "lc_win_rate", "inconsistency_rate", "words_fine_tuned", "words_opponent"]


def _win_rate_markdown(table: pd.DataFrame) -> str:
    return table[WIN_RATE_COLUMNS].round(3).to_markdown(index=False) if len(table) else "_(no judged pairs)_"


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="Every answer of eval_generations scored against the teacher's approach with each metric of the "
    "registry (" + ", ".join(m.title for m in metrics.METRICS) + "), and the judge's grade when it ran; the field's "
    "pairwise win rates in the metadata. A new metric reruns this step only, not the models.",
)
def eval_scores(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    eval_generations: pd.DataFrame,
    eval_judgements: pd.DataFrame,
    eval_preferences: pd.DataFrame,
) -> pd.DataFrame:
    profile = settings.resolve()
    scores = score_answers(eval_generations, eval_judgements, embedding_model=profile.dedup.embedding_model)
    table = summarise(scores)
    context.add_output_metadata({
        "num_rows": len(scores),
        "scores": dg.MetadataValue.md(table.round(4).to_markdown(index=False)),
        "metrics": ", ".join(m.name for m in reported_metrics(scores)),
        "metric_data": dg.MetadataValue.json({**metric_data_info(), "embedding_model": profile.dedup.embedding_model}),
        **({"win_rates": dg.MetadataValue.md(_win_rate_markdown(preference_table(eval_preferences)))}
           if len(eval_preferences) else {}),
    })
    return scores


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    description="All fields: the per-field table, paired deltas with 95% bootstrap CIs, the relative "
    "improvement (the paper's headline), Figures 1 (ROUGE-L) and 2 (METEOR) as PNG; with the pairwise judge, "
    "the win rates (ties as half, 95% Wilson CI, length-controlled, inconsistency) and their figure; with the "
    "pointwise judge, its paired delta and figure; and the verdict in plain words (verdict.md).",
    ins={"eval_scores": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
         "eval_preferences": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
)
def eval_report(
    context: dg.AssetExecutionContext, settings: PipelineSettings, eval_scores: pd.DataFrame,
    eval_preferences: pd.DataFrame,
) -> Path:
    profile = settings.resolve()
    out = Path(tempfile.mkdtemp(prefix="eval_report-"))
    by_field = summarise(eval_scores)
    comparison = comparison_table(eval_scores)
    wins = preference_table(eval_preferences)
    by_field.to_parquet(out / "scores_by_field.parquet", index=False)
    comparison.to_parquet(out / "comparison.parquet", index=False)
    wins.to_parquet(out / "win_rates.parquet", index=False)
    figures = {m.figure.removesuffix(".png"): image(grouped_bars(eval_scores, m.name, out / m.figure))
               for m in reported_metrics(eval_scores) if m.figure}
    if len(wins):
        figures[WIN_RATE_FIGURE.removesuffix(".png")] = image(win_rate_bars(wins, out / WIN_RATE_FIGURE))
    judge_models = sorted(set(eval_preferences["judge_model"]))
    verdict = verdict_paragraph(comparison, wins, ", ".join(judge_models) or None,
                                judge_is_teacher=not profile.evaluation.judge.is_independent(profile.teacher))
    (out / "verdict.md").write_text(verdict + "\n")
    overall = comparison[comparison["field"] == "all"].set_index("metric")
    judge_meta = {}
    if judged(eval_scores):
        judge_meta = {
            "judge_score_delta": float(overall.loc[metrics.JUDGE_SCORE.name, "delta"]),
            "judgements_failed": int((eval_scores["judge_status"] == "failed").sum()),
        }
    overall_wins = wins[wins["field"] == "all"].set_index("opponent") if len(wins) else wins
    win_meta = {f"win_rate_vs_{o}": float(overall_wins.loc[o, "win_rate"]) for o in overall_wins.index}
    context.add_output_metadata({
        "verdict": dg.MetadataValue.text(verdict),
        **judge_meta,
        **win_meta,
        "fields": int(by_field["field"].nunique()),
        "questions": int(eval_scores["question_id"].nunique()),
        **{f"{m.name}_improvement_pct": float(overall.loc[m.name, "improvement_pct"]) for m in metrics.METRICS},
        "scores_by_field": dg.MetadataValue.md(by_field.round(4).to_markdown(index=False)),
        "comparison": dg.MetadataValue.md(comparison.round(4).to_markdown(index=False)),
        **({"win_rates": dg.MetadataValue.md(_win_rate_markdown(wins))} if len(wins) else {}),
        **figures,
    })
    return out
