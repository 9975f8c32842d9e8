"""The Dagster code location: every stage's assets and checks, the jobs, and the resources."""

import os

import dagster as dg

from research_tuner.curation import assets as curation
from research_tuner.evaluation import assets as evaluation
from research_tuner.generation import assets as generation
from research_tuner.jobs import ALL_JOBS
from research_tuner.lake import ParquetLakeIOManager
from research_tuner.resources import TeacherResource, default_settings
from research_tuner.training import assets as training

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([generation, curation, training, evaluation]),
    asset_checks=dg.load_asset_checks_from_modules([generation, curation, training, evaluation]),
    jobs=ALL_JOBS,
    resources={
        "io_manager": ParquetLakeIOManager(root=os.environ.get("RESEARCH_TUNER_LAKE", "data_lake")),
        "settings": default_settings(),
        "teacher": TeacherResource(),
    },
)
