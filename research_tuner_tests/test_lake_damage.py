"""A damaged lake under the real data job: a truncated field file names itself and its repair, never blocks another
field's run, and its repair command (run as printed) rebuilds it from the response cache; a damaged
question_clusters or dataset_split does not block its own rerun; a lost field nothing else holds fails by name."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from research_tuner.lake import read_parquet
from research_tuner_tests.support.data_runs import errors_of, run_data_job
from research_tuner_tests.support.openai_server import FakeOpenAIServer


def truncate(path: UPath) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def two_fields(tmp_path):
    """A lake with arts and humanities built, the loopback teacher still serving, and one instance."""
    lake, work = tmp_path / "lake", tmp_path / "work"
    with FakeOpenAIServer() as server, dg.DagsterInstance.ephemeral() as instance:
        for field in ("arts", "humanities"):
            assert run_data_job(lake, field, server.base_url, work, instance).success
        yield lake, work, server, instance


def test_a_truncated_field_file_names_itself_and_other_fields_still_run(two_fields):
    lake, work, server, instance = two_fields
    damaged = UPath(lake) / "raw_questions" / "arts" / "0.parquet"
    arts_kept = set(read_parquet(UPath(lake) / "deduped_questions" / "arts.parquet")["question_id"])
    good = damaged.read_bytes()
    truncate(damaged)

    result = run_data_job(lake, "humanities", server.base_url, work, instance)
    assert result.success  # humanities does not need arts's file: the last clusters hold arts's questions
    errors = errors_of(result, instance)
    assert f"raw_questions partition arts|0: cannot read {damaged}" in errors and "magic bytes" in errors
    assert "python -m research_tuner.repair --select raw_questions --partition 'arts|0'" in errors
    assert "raw_questions of arts round 0 could not be read" in errors  # an error, not a warning
    [mat] = result.asset_materializations_for_node("question_clusters")
    assert mat.metadata["rounds_restored_from_last_clusters"].value == "arts round 0"
    clusters = read_parquet(UPath(lake) / "question_clusters" / "question_clusters.parquet")
    assert set(clusters.loc[clusters["keep"] & (clusters["field"] == "arts"), "question_id"]) == arts_kept

    # the printed repair of a round's file adds the round to a fresh instance and rebuilds it from the cache
    command = errors.split("Rematerialize it (")[1].split("): ", 1)[1].splitlines()[0]
    env = {**os.environ, "RESEARCH_TUNER_EXECUTOR": "in_process"}
    env.pop("DAGSTER_HOME", None)
    words = shlex.split(command)
    done = subprocess.run([sys.executable, *words[1:]], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert damaged.read_bytes() == good


def test_the_printed_repair_command_rebuilds_the_file_from_the_cache(two_fields):
    lake, work, server, instance = two_fields
    damaged = UPath(lake) / "approaches" / "arts.parquet"
    good = damaged.read_bytes()
    truncate(damaged)
    # dataset_split reads the damaged approaches: the error carries the command that repairs it
    result = run_data_job(lake, "arts", server.base_url, work, instance, selection=["dataset_split"])
    assert not result.success
    errors = errors_of(result, instance)
    assert f"approaches partition arts: cannot read {damaged}" in errors
    command = errors.split("Rematerialize it (")[1].split("): ", 1)[1].splitlines()[0]
    requests_before = server.requests
    env = {**os.environ, "RESEARCH_TUNER_EXECUTOR": "in_process",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # this venv's dagster
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert damaged.read_bytes() == good  # the same answers from the cache: the same bytes
    assert server.requests == requests_before  # and not one request to the teacher


def test_a_damaged_clusters_or_split_file_does_not_block_its_own_rerun(two_fields):
    lake, work, server, instance = two_fields
    truncate(UPath(lake) / "question_clusters" / "question_clusters.parquet")
    truncate(UPath(lake) / "dataset_split" / "humanities.parquet")
    result = run_data_job(lake, "humanities", server.base_url, work, instance)
    assert result.success
    errors = errors_of(result, instance)
    assert "question_clusters: cannot read" in errors and "this run replaces it" in errors
    assert "dataset_split partition humanities: cannot read" in errors
    assert len(read_parquet(UPath(lake) / "dataset_split" / "humanities.parquet")) > 0


def test_a_lost_field_that_nothing_else_holds_fails_question_clusters_by_name(two_fields):
    lake, work, server, instance = two_fields
    (UPath(lake) / "raw_questions" / "arts" / "0.parquet").unlink()
    (UPath(lake) / "question_clusters" / "question_clusters.parquet").unlink()
    result = run_data_job(lake, "humanities", server.base_url, work, instance)
    assert not result.success  # clustering without arts would drop arts's questions from every later step
    errors = errors_of(result, instance)
    assert "raw_questions partition arts|0: cannot read" in errors and "the file is gone although run" in errors
    assert "raw_questions of arts round 0 were published but cannot be read" in errors
    assert not (UPath(lake) / "question_clusters" / "question_clusters.parquet").exists()  # nothing half-made
