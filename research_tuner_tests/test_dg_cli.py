"""Dagster's `dg` CLI works on the project (`[tool.dg]` in pyproject.toml) beside workspace.yaml and `dagster dev`:
`dg check defs` loads the code location, `dg list defs` lists what definitions.py defines, and `dg launch`
materializes a partition into the lake the environment names."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dg(tmp_path):
    executable = Path(sys.executable).parent / "dg"
    if not executable.exists():
        executable = shutil.which("dg")
    assert executable, "the dev extra installs dagster-dg-cli (scripts/setup.sh)"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RESEARCH_TUNER_LAKE": str(tmp_path / "lake"),
           "PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(executable), *args], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        return out

    return run, tmp_path


def test_dg_checks_and_lists_the_definitions(dg):
    from research_tuner.definitions import defs

    run, _ = dg
    checked = run("check", "defs")
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = json.loads(run("list", "defs", "--json").stdout)
    keys = {asset["asset_key"] for asset in listed["assets"]}
    assert keys == {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {job["name"] for job in listed["jobs"]} >= {"data_job", "training_job", "evaluation_job", "report_job"}
    assert {s["name"] for s in listed["schedules"]} == {"regeneration_schedule"}


def test_dg_launch_materializes_a_partition_into_the_lake(dg, monkeypatch):
    import dagster

    run, tmp = dg
    monkeypatch.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    with dagster.DagsterInstance.get() as instance:  # the round, as the UI's "Add partition" or the CLI adds it
        instance.add_dynamic_partitions("generation_round", ["0"])
    run("launch", "--assets", "subdomains", "--partition", "arts|0")
    frame = pd.read_parquet(tmp / "lake" / "subdomains" / "arts" / "0.parquet")
    assert len(frame) >= 1 and set(frame["field"]) == {"arts"}
