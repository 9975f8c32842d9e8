"""Scheduled regeneration, the data runs that follow a round, and the run-failure record.

Automation policy: the schedule (off until a person turns it on in the UI) adds a generation round (a new
partition of the `generation_round` dimension) and runs `round_job` for it in every field, so the teacher writes
new questions next to the earlier rounds' instead of over them. When a field's round run succeeds, the
`curate_new_rounds` sensor launches that field's `data_job`: the new questions are deduplicated against every
earlier round and field, approached, and added to the split, which only grows. Training and evaluation never
start by themselves: a new adapter costs GPU hours, so a person launches `training_job` when the new data is
worth it.
"""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg

from research_tuner.jobs import data_job, round_job
from research_tuner.partitions import FIELDS, field_round_key
from research_tuner.rounds import register_rounds

#: Cron of the regeneration schedule; Mondays 03:00 unless RESEARCH_TUNER_REGENERATION_CRON says otherwise.
REGENERATION_CRON = os.environ.get("RESEARCH_TUNER_REGENERATION_CRON", "0 3 * * 1")


def generation_round_for(moment: dt.datetime) -> str:
    """A new round per tick (YYYYMMDDHH), so every scheduled run asks the teacher for new data."""
    return moment.strftime("%Y%m%d%H")


@dg.schedule(
    cron_schedule=REGENERATION_CRON,
    job=round_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Add a generation round and write its questions for every field; earlier rounds stay.",
)
def regeneration_schedule(context: dg.ScheduleEvaluationContext):
    moment = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
    round_ = generation_round_for(moment)
    register_rounds(context.instance, [round_])
    for field in FIELDS:
        yield dg.RunRequest(
            run_key=f"regenerate-{round_}-{field}",
            partition_key=field_round_key(field, round_),
            tags={"research_tuner/generation_round": round_},
        )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[round_job],
    request_job=data_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="After a field's round_job succeeds, run data_job for the field, so the new round's questions "
    "reach question_clusters, the approaches and the split.",
)
def curate_new_rounds(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    key = run.tags.get("dagster/partition") or ""
    field = run.tags.get("dagster/partition/field") or (key.split("|")[0] if "|" in key else None)
    if field is None:  # a round run over a range of partitions names no single field
        return None
    return dg.RunRequest(run_key=f"curate-after-{run.run_id}", partition_key=field,
                         tags={"research_tuner/after_round_run": run.run_id})


def failure_log_path() -> Path:
    home = os.environ.get("DAGSTER_HOME") or "."
    return Path(home) / "run_failures.jsonl"


@dg.run_failure_sensor(description="Appends each failed run (job, partition, failed steps, error) to run_failures.jsonl.")
def record_run_failures(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    steps = [event.step_key for event in context.get_step_failure_events()]
    record = {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "failed_steps": steps,
        "error": context.failure_event.message,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = failure_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    context.log.info(f"recorded failure of {run.job_name} ({record['partition']}): {', '.join(steps) or 'run'}")
