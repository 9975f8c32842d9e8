"""Assets of the generation stage: subdomains -> raw_questions; deduped_questions -> approaches."""
from contextlib import contextmanager

import dagster as dg
import pandas as pd

from research_tuner.executors import network_retry_policy
from research_tuner.interrupts import stop_on_interrupt
from research_tuner.lib.approaches import generate_approaches
from research_tuner.lib.questions import generate_questions
from research_tuner.lib.sections import missing_sections
from research_tuner.lib.taxonomy import get_field
from research_tuner.lib.teacher import TeacherConfigError, Usage
from research_tuner.metadata import ProgressLogger, counts_by, preview, usage_metadata
from research_tuner.partitions import field_partitions
from research_tuner.resources import PipelineSettings, TeacherResource

GROUP = "generation"
# Network-facing steps retry on their own before a person has to look; the response cache makes each
# retry resend only what is missing.
TEACHER_RETRY = network_retry_policy()


@contextmanager
def no_retry_on_config_error():
    """A bad key, an unknown model or a reached budget is not fixed by retrying the step: fail it once."""
    try:
        yield
    except TeacherConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


@dg.asset(
    group_name=GROUP,
    kinds={"python", "parquet"},
    partitions_def=field_partitions,
    description="The field's subdomains from the taxonomy data file (the first N when the profile limits them).",
)
def subdomains(context: dg.AssetExecutionContext, settings: PipelineSettings) -> pd.DataFrame:
    profile = settings.resolve()
    field = get_field(context.partition_key)
    chosen = field.subdomains[: profile.generation.subdomains_per_field]
    frame = pd.DataFrame({"field": field.key, "field_title": field.title, "subdomain": list(chosen)})
    context.add_output_metadata({"num_rows": len(frame), "subdomains": ", ".join(chosen), "profile": profile.name})
    return frame


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_partitions,
    retry_policy=TEACHER_RETRY,
    description="Research questions the teacher wrote for each subdomain, one row per parsed question.",
)
@stop_on_interrupt
def raw_questions(
    context: dg.AssetExecutionContext, settings: PipelineSettings, teacher: TeacherResource, subdomains: pd.DataFrame
) -> pd.DataFrame:
    profile = settings.resolve()
    usage = Usage()
    with no_retry_on_config_error():
        frame = generate_questions(
            teacher.get(settings),
            context.partition_key,
            subdomains["subdomain"].tolist(),
            profile.teacher,
            profile.generation.questions_per_subdomain,
            usage,
            progress=ProgressLogger(context, "question requests"),
        )
    if frame.empty:
        raise RuntimeError(
            f"the teacher produced no usable question for {context.partition_key}: "
            f"{usage.failure_reasons or 'no response'}; see the run log"
        )
    context.add_output_metadata({
        "num_rows": len(frame),
        "per_subdomain": counts_by(frame, "subdomain"),
        "preview": preview(frame, ["subdomain", "question"]),
        **usage_metadata(usage, profile.teacher),
    })
    return frame


@dg.asset(
    group_name=GROUP,
    kinds={"openai", "parquet"},
    partitions_def=field_partitions,
    retry_policy=TEACHER_RETRY,
    description="A research approach per kept question: Markdown with the paper's 7 sections.",
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
    with no_retry_on_config_error():
        valid, failed = generate_approaches(
            teacher.get(settings), deduped_questions, profile.teacher, usage,
            progress=ProgressLogger(context, "approach requests"),
        )
    incomplete = valid[[bool(missing_sections(a)) for a in valid["approach"]]]
    yield dg.Output(valid, metadata={
        "num_rows": len(valid),
        "num_failed": len(failed),
        "mean_approach_words": float(valid["approach"].str.split().str.len().mean()) if len(valid) else 0.0,
        "preview": preview(valid, ["subdomain", "question", "approach"], rows=4, width=400),
        **({"failures": preview(failed, ["subdomain", "question", "error"])} if len(failed) else {}),
        **usage_metadata(usage, profile.teacher),
    })
    yield dg.AssetCheckResult(
        check_name="every_approach_has_7_sections",
        passed=bool(len(valid)) and incomplete.empty,
        metadata={"rows": len(valid), "rows_missing_sections": len(incomplete)},
    )
    yield dg.AssetCheckResult(
        check_name="no_failed_approaches",
        passed=failed.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": len(failed), "questions": len(deduped_questions)},
    )
