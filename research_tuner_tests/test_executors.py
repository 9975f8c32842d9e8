"""The local executor: torch steps (training, evaluation generation) never run at the same time, other
steps do, and the thread cap shares the cores out among the torch steps allowed at once."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from research_tuner import executors
from research_tuner.settings import SettingsError


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _torch_step(name: str) -> None:
    """Runs for 5 s and records whether another torch step was running meanwhile (it must not be)."""
    folder = Path(os.environ["RT_EXECUTOR_TEST_DIR"])
    mine = folder / f"running_{name}"
    mine.touch()
    others = lambda: [p.name for p in folder.glob("running_*") if p != mine]  # noqa: E731
    seen = _wait_for(others, timeout=5.0)
    (folder / f"{name}.json").write_text(json.dumps({"saw_another_torch_step": seen, "pid": os.getpid()}))
    mine.unlink()


def _other_step(name: str, peer: str) -> None:
    """Waits until `peer` has started too: finishes only if both run at the same time."""
    folder = Path(os.environ["RT_EXECUTOR_TEST_DIR"])
    (folder / f"started_{name}").touch()
    met = _wait_for(lambda: (folder / f"started_{peer}").exists(), timeout=60.0)
    (folder / f"{name}.json").write_text(json.dumps({"met_peer": met, "pid": os.getpid()}))


@dg.op(tags=executors.TORCH_STEP_TAGS)
def train_a():
    _torch_step("train_a")


@dg.op(tags=executors.TORCH_STEP_TAGS)
def train_b():
    _torch_step("train_b")


@dg.op
def fetch_a():
    _other_step("fetch_a", "fetch_b")


@dg.op
def fetch_b():
    _other_step("fetch_b", "fetch_a")


def concurrency_job():
    @dg.job(executor_def=executors.local_executor())
    def four_steps():
        train_a(), train_b(), fetch_a(), fetch_b()

    return four_steps


def test_torch_steps_run_one_at_a_time_and_others_alongside(tmp_path, monkeypatch):
    monkeypatch.setenv("RT_EXECUTOR_TEST_DIR", str(tmp_path))
    with dg.instance_for_test() as instance:
        job = dg.build_reconstructable_job("research_tuner_tests.test_executors", "concurrency_job",
                                           reconstructor_working_directory=str(Path(__file__).resolve().parents[1]))
        result = dg.execute_job(job, instance=instance)
        assert result.success
    runs = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("train_a", "train_b", "fetch_a", "fetch_b")}
    assert len({r["pid"] for r in runs.values()}) == 4  # one process per step
    assert not runs["train_a"]["saw_another_torch_step"] and not runs["train_b"]["saw_another_torch_step"]
    assert runs["fetch_a"]["met_peer"] and runs["fetch_b"]["met_peer"]


def test_the_torch_assets_carry_the_tag_and_the_code_location_uses_the_executor():
    from research_tuner.definitions import defs  # not at module level: step processes import this module

    graph = defs.resolve_asset_graph()
    for name in ("lora_adapter", "eval_generations"):
        node = graph.assets_def_for_key(dg.AssetKey(name)).node_def
        assert node.tags.get(executors.TORCH_TAG_KEY) == "torch", name
    assert defs.resolve_job_def("training_job").executor_def.name == "research_tuner_multiprocess"


def test_threads_per_torch_step(monkeypatch):
    monkeypatch.delenv("RESEARCH_TUNER_TORCH_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setenv("RESEARCH_TUNER_TORCH_STEPS", "2")
    assert executors.torch_threads_per_step() == 4
    monkeypatch.setenv("RESEARCH_TUNER_TORCH_STEPS", "1")
    assert executors.torch_threads_per_step() == 8
    monkeypatch.setenv("RESEARCH_TUNER_TORCH_THREADS", "3")
    assert executors.torch_threads_per_step() == 3
    monkeypatch.setenv("RESEARCH_TUNER_TORCH_STEPS", "two")
    with pytest.raises(SettingsError, match="RESEARCH_TUNER_TORCH_STEPS='two': expected a whole number"):
        executors.torch_steps_at_once()


def test_a_torch_step_process_keeps_to_its_share_of_the_cores():
    """Two torch steps allowed at once on this machine: each step process trains with cores / 2 threads."""
    import subprocess
    import sys

    env = {**os.environ, "RESEARCH_TUNER_TORCH_STEPS": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("RESEARCH_TUNER_TORCH_THREADS", None)
    code = ("import os; from research_tuner import executors; executors.cap_torch_threads(); "
            "import torch; from research_tuner.lib.shared.hardware import apply_process_settings, detect_hardware; "
            "apply_process_settings(detect_hardware()); "
            "print(torch.get_num_threads(), os.cpu_count())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    threads, cores = map(int, out.stdout.split()[-2:])
    assert threads == max(1, cores // 2)
