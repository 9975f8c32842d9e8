"""Scheduled regeneration and the run-failure record.

Automation policy: the schedule (off until a person turns it on in the UI) regenerates the data
assets of every field with a new generation round, so the teacher writes new questions and approaches
instead of answering from its cache. Training and evaluation never start by themselves: a new adapter
costs GPU hours, so a person launches `training_job` when the new data is worth it.
"""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg

from research_tuner.jobs import data_job
from research_tuner.partitions import FIELDS

#: Cron of the regeneration schedule; Mondays 03:00 unless RESEARCH_TUNER_REGENERATION_CRON says otherwise.
REGENERATION_CRON = os.environ.get("RESEARCH_TUNER_REGENERATION_CRON", "0 3 * * 1")


def generation_round_for(moment: dt.datetime) -> int:
    """A new round per tick (YYYYMMDDHH), so every scheduled run asks the teacher for new data."""
    return int(moment.strftime("%Y%m%d%H"))


@dg.schedule(
    cron_schedule=REGENERATION_CRON,
    job=data_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Regenerate questions and approaches for every field with a new generation round.",
)
def regeneration_schedule(context: dg.ScheduleEvaluationContext):
    moment = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
    round_ = generation_round_for(moment)
    for field in FIELDS:
        yield dg.RunRequest(
            run_key=f"regenerate-{round_}-{field}",
            partition_key=field,
            run_config={"resources": {"settings": {"config": {"overrides": {"teacher": {"generation_round": round_}}}}}},
            tags={"research_tuner/generation_round": str(round_)},
        )


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
