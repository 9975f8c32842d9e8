"""The deployment files: the Kubernetes instance and run config validate against dagster-k8s's own
schemas, the code location switches executor through RESEARCH_TUNER_EXECUTOR, and the documented UI
command binds 127.0.0.1."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from research_tuner.executors import TORCH_TAG_KEY, executor_from_env
from research_tuner.resources import PipelineSettings
from research_tuner.settings import SettingsError

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"


def validate(schema, value):
    from dagster._config import validate_config

    result = validate_config(schema, value)
    assert result.success, [e.message for e in result.errors]


def test_k8s_run_config_validates_against_the_k8s_executor():
    from dagster_k8s import k8s_job_executor

    config = yaml.safe_load((K8S / "run-config.yaml").read_text())
    validate(k8s_job_executor.config_schema.config_type, config["execution"]["config"])
    limits = config["execution"]["config"]["tag_concurrency_limits"]
    assert {"key": TORCH_TAG_KEY, "value": "torch", "limit": 2} in limits
    # the step names the per-step config targets are the real ones
    assert set(config["execution"]["config"]["per_step_k8s_config"]) == {"lora_adapter", "eval_generations"}
    settings = config["resources"]["settings"]["config"]
    from research_tuner.definitions import defs

    dg.validate_run_config(defs.resolve_job_def("data_job"), {"resources": config["resources"]})  # typed keys
    assert PipelineSettings(**settings).resolve().teacher.base_url.endswith("/v1")


def test_k8s_instance_validates_and_holds_no_secret():
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster_k8s import K8sRunLauncher

    text = (K8S / "dagster-instance.yaml").read_text()
    config = yaml.safe_load(text)
    validate(dagster_instance_config_schema(), config)
    validate(K8sRunLauncher.config_type(), config["run_launcher"]["config"])
    assert all(set(v) == {"env"} for k, v in config["storage"]["postgres"]["postgres_db"].items() if k != "scheme")


def test_executor_is_chosen_by_environment(monkeypatch):
    monkeypatch.delenv("RESEARCH_TUNER_EXECUTOR", raising=False)
    assert executor_from_env().name == "research_tuner_multiprocess"
    monkeypatch.setenv("RESEARCH_TUNER_EXECUTOR", "k8s")
    assert executor_from_env().name == "k8s"
    monkeypatch.setenv("RESEARCH_TUNER_EXECUTOR", "in_process")
    assert executor_from_env().name == "in_process"
    monkeypatch.setenv("RESEARCH_TUNER_EXECUTOR", "celery")
    with pytest.raises(SettingsError, match="choose one of multiprocess, in_process, k8s"):
        executor_from_env()


def test_code_location_loads_with_the_k8s_executor():
    env = {**os.environ, "RESEARCH_TUNER_EXECUTOR": "k8s", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", "from research_tuner.definitions import defs; "
                               "print(defs.resolve_job_def('training_job').executor_def.name)"],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "k8s"


def test_the_documented_ui_command_binds_loopback():
    script = (REPO / "scripts" / "ui.sh").read_text()
    assert 'dagster dev -h "${RESEARCH_TUNER_UI_HOST:-127.0.0.1}"' in script
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/ui.sh" in readme
    # every `dagster dev` command the README shows names the loopback address
    commands = [line for line in readme.splitlines() if "dagster dev -" in line]
    assert commands and all("dagster dev -h 127.0.0.1" in line for line in commands)
