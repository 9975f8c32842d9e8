"""Assets of the evaluation stage: eval_generations -> eval_judgements (optional LLM-as-judge) -> eval_scores
(per field) -> eval_report (all fields)."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from research_tuner.executors import TORCH_STEP_TAGS
from research_tuner.generation.assets import TEACHER_RETRY
from research_tuner.interrupts import stop_on_interrupt
from research_tuner.lib.evaluation import answer_both, summarise, with_judge_scores
from research_tuner.lib.judge import SCORE_COLUMNS, empty_judgements, judge_responses
from research_tuner.lib.metrics import metric_data_info
from research_tuner.lib.report import comparison_table, grouped_bars
from research_tuner.lib.split import evaluation_sample
from research_tuner.lib.teacher import Usage
from research_tuner.metadata import ProgressLogger, image, preview, usage_metadata
from research_tuner.partitions import field_partitions
from research_tuner.resources import PipelineSettings, TeacherResource

GROUP = "evaluation"


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    op_tags=TORCH_STEP_TAGS,
    partitions_def=field_partitions,
    description="Base and fine-tuned answers to validation questions (N per subdomain), greedy, same token "
    "limit, scored against the teacher's approach with ROUGE-L and METEOR.",
    check_specs=[dg.AssetCheckSpec("sample_only_from_validation", asset="eval_generations", blocking=True)],
)
def eval_generations(
    context: dg.AssetExecutionContext, settings: PipelineSettings, dataset_split: pd.DataFrame, lora_adapter: Path
):
    from research_tuner.lib.training import load_for_inference

    profile = settings.resolve()
    cfg = profile.evaluation
    sample = evaluation_sample(dataset_split, cfg.questions_per_subdomain, cfg.seed)
    if sample.empty:
        raise ValueError(f"no validation questions for {context.partition_key}: nothing to evaluate")
    manifest = json.loads((lora_adapter / "manifest.json").read_text())
    model, tokenizer = load_for_inference(manifest["base_model"], lora_adapter / "adapter",
                                          precision=profile.training.precision)
    generations = answer_both(model, tokenizer, sample, max_new_tokens=cfg.max_new_tokens,
                              batch_size=cfg.batch_size, progress=ProgressLogger(context, "answers"))
    train_ids = set(dataset_split.loc[dataset_split["split"] == "train", "question_id"])
    leaked = sorted(set(generations["question_id"]) & train_ids)
    hit_limit = generations.groupby("model")["finish_reason"].apply(lambda s: float((s == "length").mean()))
    yield dg.Output(generations, metadata={
        "num_rows": len(generations),
        "questions": len(sample),
        "base_model": manifest["base_model"],
        "hit_token_limit": dg.MetadataValue.json(hit_limit.round(3).to_dict()),
        "metric_data": dg.MetadataValue.json(metric_data_info()),
        "preview": preview(generations, ["model", "question", "response", "rouge_l", "meteor"], width=240),
    })
    yield dg.AssetCheckResult(check_name="sample_only_from_validation", passed=not leaked,
                              metadata={"train_rows_in_sample": len(leaked)})


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_partitions,
    retry_policy=TEACHER_RETRY,
    description="Optional LLM-as-judge (evaluation.judge.enabled): the teacher grades every answer, blind to "
    "which model wrote it, on the 7 sections and feasibility (integers 0-5) against the reference approach. "
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
        **usage_metadata(usage, profile.teacher.model_copy(update={"model": judge.model})),
    })
    return table


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="Per field and model: n, mean ROUGE-L, METEOR, section coverage, share cut at the token limit; "
    "with the judge on, also the mean judge score (0-5) over the answers it graded and how many failed.",
)
def eval_scores(
    context: dg.AssetExecutionContext, eval_generations: pd.DataFrame, eval_judgements: pd.DataFrame
) -> pd.DataFrame:
    table = summarise(eval_generations, eval_judgements)
    context.add_output_metadata({"num_rows": len(table), "scores": dg.MetadataValue.md(table.round(4).to_markdown(index=False))})
    return table


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    description="All fields: the per-field table, paired deltas with 95% bootstrap CIs, the relative "
    "improvement (the paper's headline), and Figures 1 (ROUGE-L) and 2 (METEOR) as PNG; with the judge on, "
    "the judge score's paired delta too and a third figure.",
    ins={
        "eval_generations": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "eval_scores": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "eval_judgements": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
    },
)
def eval_report(
    context: dg.AssetExecutionContext,
    eval_generations: pd.DataFrame,
    eval_scores: pd.DataFrame,
    eval_judgements: pd.DataFrame,
) -> Path:
    out = Path(tempfile.mkdtemp(prefix="eval_report-"))
    scored = with_judge_scores(eval_generations, eval_judgements)
    judged = "judge_score" in scored.columns
    metrics = ("rouge_l", "meteor", "section_coverage") + (("judge_score",) if judged else ())
    comparison = comparison_table(scored, metrics)
    eval_scores.to_parquet(out / "scores_by_field.parquet", index=False)
    comparison.to_parquet(out / "comparison.parquet", index=False)
    fig_rouge = grouped_bars(eval_generations, "rouge_l", out / "figure1_rouge_l.png")
    fig_meteor = grouped_bars(eval_generations, "meteor", out / "figure2_meteor.png")
    overall = comparison[comparison["field"] == "all"].set_index("metric")
    judge_meta = {}
    if judged:
        fig_judge = grouped_bars(scored, "judge_score", out / "figure3_judge_score.png")
        judge_meta = {
            "judge_score_delta": float(overall.loc["judge_score", "delta"]),
            "judgements_failed": int((eval_judgements["status"] == "failed").sum()),
            "figure3_judge_score": image(fig_judge),
        }
    context.add_output_metadata({
        **judge_meta,
        "fields": int(eval_scores["field"].nunique()),
        "questions": int(eval_generations["question_id"].nunique()),
        "rouge_l_improvement_pct": float(overall.loc["rouge_l", "improvement_pct"]),
        "meteor_improvement_pct": float(overall.loc["meteor", "improvement_pct"]),
        "scores_by_field": dg.MetadataValue.md(eval_scores.round(4).to_markdown(index=False)),
        "comparison": dg.MetadataValue.md(comparison.round(4).to_markdown(index=False)),
        "figure1_rouge_l": image(fig_rouge),
        "figure2_meteor": image(fig_meteor),
    })
    return out
