"""The Dagster code location: every stage's assets and checks, the jobs, and the resources."""

import os

import dagster as dg

from research_tuner.approaches import assets as approaches
from research_tuner.automation import curate_new_rounds, record_run_failures, regeneration_schedule
from research_tuner.evaluation import assets as evaluation
from research_tuner.executors import cap_torch_threads, executor_from_env
from research_tuner.jobs import ALL_JOBS
from research_tuner.lake import ParquetLakeIOManager
from research_tuner.questions import assets as questions
from research_tuner.release import assets as release
from research_tuner.resources import TeacherResource, default_settings
from research_tuner.training import assets as training
from research_tuner.versions import with_code_versions

STAGES = [questions, approaches, training, evaluation, release]

cap_torch_threads()

defs = dg.Definitions(
    # code versions from the profile chosen by the environment, so a changed prompt or setting shows as stale
    assets=with_code_versions(
        dg.load_assets_from_modules(STAGES), default_settings().resolve()
    ),
    asset_checks=dg.load_asset_checks_from_modules(STAGES),
    jobs=ALL_JOBS,
    schedules=[regeneration_schedule],
    sensors=[record_run_failures, curate_new_rounds],
    executor=executor_from_env(),
    resources={
        "io_manager": ParquetLakeIOManager(root=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake")),
        "settings": default_settings(),
        "teacher": TeacherResource(),
    },
)
