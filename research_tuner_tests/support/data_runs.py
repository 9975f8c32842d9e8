"""A generation round and the data job (subdomains through dataset_split) for one field on a tiny lake, with the paper profile's OpenAI
code path pointed at a loopback teacher: small enough (1 subdomain, 4 questions, lexical dedup only) for a test
to run it several times in a few seconds."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

DATA_ASSETS = ("subdomains", "raw_questions", "question_clusters", "deduped_questions", "approaches",
               "dataset_split")


def data_run_config(lake: Path | str, base_url: str, work: Path | str) -> dict:
    overrides = {
        "teacher": {"base_url": base_url, "questions_per_request": 4, "max_retries": 1},
        "generation": {"subdomains_per_field": 1, "questions_per_subdomain": 4},
        "dedup": {"semantic": False},
    }
    return {"resources": {
        "settings": {"config": {"profile": "paper", **overrides, "work_dir": str(work)}},
        "io_manager": {"config": {"root": str(lake)}},
    }}


def run_data_job(lake: Path | str, field: str, base_url: str, work: Path | str,
                 instance: dg.DagsterInstance, selection: list[str] | None = None,
                 round_: str = "0") -> dg.ExecuteInProcessResult:
    """round_job for (`field`, `round_`), then data_job for `field` (only the assets in `selection` when given, each
    in its job); never raises for a failed step (read `.success` and the events of the result returned: the
    failed run's, else the last one's)."""
    return list(run_data_jobs(lake, field, base_url, work, instance, selection, round_).values())[-1]


def run_data_jobs(lake: Path | str, field: str, base_url: str, work: Path | str,
                  instance: dg.DagsterInstance, selection: list[str] | None = None,
                  round_: str = "0") -> dict[str, dg.ExecuteInProcessResult]:
    """What run_data_job runs, each job's result by its name (a failed job is the last one)."""
    from research_tuner.definitions import defs
    from research_tuner.partitions import field_round_key
    from research_tuner.rounds import ROUND_ASSETS, register_rounds

    register_rounds(instance, [round_])
    chosen = list(selection or DATA_ASSETS)
    results = {}
    for job, key, assets in (("round_job", str(field_round_key(field, round_)), ROUND_ASSETS),
                             ("data_job", field, DATA_ASSETS[len(ROUND_ASSETS):])):
        mine = [a for a in chosen if a in assets]
        if not mine:
            continue
        result = results[job] = defs.resolve_job_def(job).execute_in_process(
            run_config=data_run_config(lake, base_url, work), partition_key=key, instance=instance,
            raise_on_error=False,
            asset_selection=[dg.AssetKey(a) for a in mine] if len(mine) < len(assets) else None,
        )
        if not result.success:
            break
    return results


def errors_of(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> str:
    """The step failures' messages (with their causes) and the run's error-level log lines, as one text."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    texts += [r.user_message for r in instance.all_logs(result.run_id) if r.level >= 40]
    return "\n".join(texts)
