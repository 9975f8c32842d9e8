"""Data-parallel (DDP) LoRA training through Accelerate's launcher: 2 CPU processes joined with gloo, on the tiny Llama."""

from __future__ import annotations

import os
import shutil
import signal

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from research_tuner.lib.training.distributed import (
    WORKER_MODULE,
    DistributedTrainingError,
    check_processes,
    launch_command,
)
from research_tuner.lib.training.train import train_lora
from research_tuner.settings import SettingsError, TrainingSettings, load_profile
from research_tuner_tests.support.tiny_training import tiny_training_settings

N_EXAMPLES, PER_DEVICE, ACCUMULATION, PROCESSES, EPOCHS = 16, 2, 2, 2, 2
#: optimizer steps: examples / effective batch (per device x accumulation per process x processes) per epoch
STEPS = N_EXAMPLES // (PER_DEVICE * (ACCUMULATION // PROCESSES) * PROCESSES) * EPOCHS


def _examples(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question": [f"How does factor {i} affect crop yield in dry regions{'?' * (1 + i % 5)}" for i in range(n)],
            "approach": [
                f"## Hypothesis\nFactor {i} raises yield.\n## Methodology\nA field trial with {i + 2} plots."
                + " More plots." * (i % 4)
                for i in range(n)
            ],
        }
    )


def _settings(model_dir, **overrides) -> TrainingSettings:
    values = dict(
        lora_dropout=0.0,  # no per-process dropout noise: 1 and 2 processes must give the same weights
        per_device_batch_size=PER_DEVICE,
        gradient_accumulation_steps=ACCUMULATION,
        epochs=EPOCHS,
        save_steps=2,
        processes=PROCESSES,
    )
    values.update(overrides)
    return tiny_training_settings(model_dir, **values)


def _adapter(result) -> dict[str, torch.Tensor]:
    return load_file(result.adapter_dir / "adapter_model.safetensors")


# --- validation, before anything starts ------------------------------------------------------------


def test_processes_are_checked_against_the_machine_and_the_batch(tiny_model_dir):
    settings = _settings(tiny_model_dir, processes=4, gradient_accumulation_steps=4)
    with pytest.raises(SettingsError, match=r"training.processes=4, but 2 CUDA device\(s\) are visible.*at most 2"):
        check_processes(settings, cuda_devices=2)
    assert check_processes(settings, cuda_devices=4) == 4
    assert check_processes(settings, cuda_devices=0) == 4  # CPU processes with gloo: how these tests run it
    auto = _settings(tiny_model_dir, processes="auto", gradient_accumulation_steps=4)
    assert check_processes(auto, cuda_devices=0) == 1
    assert check_processes(auto, cuda_devices=2) == 2
    with pytest.raises(SettingsError, match=r"processes=3 does not divide .*gradient_accumulation_steps=4"):
        check_processes(auto, cuda_devices=3)  # 'auto' took all 3 GPUs: the batch of 8 cannot be split 3 ways

    # a count that cannot keep the effective batch is refused when the settings are read, with what would work
    with pytest.raises(SettingsError, match=r"processes=3 does not divide.*= 8\) does not change; use 1, 2 or 4"):
        load_profile("paper", overrides={"training": {"processes": 3}})
    with pytest.raises(SettingsError, match=r"set per_device_batch_size=1 and gradient_accumulation_steps=8"):
        load_profile("paper", overrides={"training": {"processes": 8}})
    with pytest.raises(SettingsError, match=r"training.processes"):
        load_profile("paper", overrides={"training": {"processes": 0}})
    paper = load_profile("paper", overrides={"training": {"processes": 4}}).training
    assert paper.effective_batch_size == 8  # 2 per device x 4 accumulation, now 2 x 1 x 4 processes


def test_preflight_names_a_process_count_the_machine_cannot_run(monkeypatch):
    from research_tuner.lib.training import distributed
    from research_tuner.preflight import preflight

    profile = load_profile("demo", overrides={"training": {"processes": 4, "gradient_accumulation_steps": 4}})
    monkeypatch.setattr(distributed, "visible_cuda_devices", lambda: 2)
    assert any("training.processes=4, but 2 CUDA device(s)" in p for p in preflight(profile).problems)
    monkeypatch.setattr(distributed, "visible_cuda_devices", lambda: 4)
    assert preflight(profile).problems == []


def test_callbacks_are_refused_before_any_process_starts(tiny_model_dir, tmp_path):
    data = _examples(4)
    with pytest.raises(ValueError, match="callbacks run only in single-process training"):
        train_lora(data, data, _settings(tiny_model_dir), tmp_path / "run", callbacks=[object()])
    assert not (tmp_path / "run").exists()


def test_launch_command_is_accelerates_launcher_on_the_worker_module(tmp_path):
    command = launch_command(4, tmp_path / "spec.json")
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "4" and "--multi_gpu" in command
    assert command[-3:] == ["--module", WORKER_MODULE, str(tmp_path / "spec.json")]


# --- real 2-process runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """The same training in one process and in two (same effective batch), through train_lora."""
    data = _examples(N_EXAMPLES)
    out = tmp_path_factory.mktemp("ddp")
    events: list[dict] = []
    two = train_lora(data, data.iloc[:4], _settings(tiny_model_dir), out / "two", progress=events.append)
    one = train_lora(data, data.iloc[:4], _settings(tiny_model_dir, processes=1), out / "one")
    return one, two, events, out


@pytest.mark.slow
def test_two_processes_train_once_with_the_effective_batch(runs):
    one, two, events, out = runs
    assert two.processes == 2 and one.processes == 1
    assert two.global_step == two.max_steps == STEPS == 8
    # both ranks took part: each saved its random state in the checkpoint
    last = out / "two" / "checkpoints" / f"checkpoint-{STEPS}"
    assert {p.name for p in last.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    # rank 0 alone reported and wrote: one progress event per step, one set of outputs
    train_steps = [e["step"] for e in events if e["kind"] == "train"]
    assert train_steps == list(range(1, STEPS + 1))
    assert all(e["max_steps"] == STEPS for e in events if e["kind"] == "train")
    assert any(e["kind"] == "eval" and e["eval_loss"] > 0 for e in events)
    assert {p.name for p in (out / "two").iterdir()} == {
        "adapter", "tokenizer", "training_log.parquet", "loss_curve.png", "checkpoints", "distributed"}
    assert (two.tokenizer_dir / "tokenizer_config.json").is_file() and two.loss_curve_png.stat().st_size > 1000
    logged = pd.read_parquet(out / "two" / "training_log.parquet")
    assert logged["loss"].dropna().size == STEPS and two.final_train_loss == pytest.approx(logged["loss"].dropna().iloc[-1])
    assert two.tokens_seen == one.tokens_seen > 0  # every example once per epoch, counted over both ranks
    assert two.resumed_from_step is None and two.device == "cpu" and two.hardware.device == "cpu"


@pytest.mark.slow
def test_two_processes_learn_what_one_process_learns(runs):
    """Each rank gets other examples and the gradients are averaged: 2 processes x 1 accumulated batch give
    the weights of 1 process x 2 accumulated batches (which a rank that saw every example would not)."""
    one, two, _, _ = runs
    a, b = _adapter(one), _adapter(two)
    assert a.keys() == b.keys()
    assert all(b[k].abs().sum() > 0 for k in b if "lora_B" in k)  # B starts at zero: the adapter trained
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4)
    assert two.log["loss"].dropna().tolist() == pytest.approx(one.log["loss"].dropna().tolist(), abs=1e-4)
    assert two.log["loss"].dropna().iloc[-1] < two.log["loss"].dropna().iloc[0] - 0.2


def _worker_pid(rank: int) -> int | None:
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if WORKER_MODULE in " ".join(child.cmdline()) and child.environ().get("RANK") == str(rank):
                return child.pid
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_a_killed_process_fails_the_run_and_the_asset_resumes_from_its_checkpoint(
    runs, tiny_model_dir, tmp_path, monkeypatch
):
    """A rank killed mid-run fails train_lora with torchrun's report; the `lora_adapter` asset, run again on
    the same data and settings, resumes in 2 processes from the checkpoint left behind (and so does a single
    process); both end with the weights of the uninterrupted run."""
    import json

    import dagster as dg

    from research_tuner.resources import PipelineSettings
    from research_tuner.training.assets import lora_adapter

    one, _, _, _ = runs
    data = _examples(N_EXAMPLES)
    settings = _settings(tiny_model_dir)
    monkeypatch.setenv("RESEARCH_TUNER_WORK", str(tmp_path))
    work = tmp_path / "lora_adapter"  # where the asset trains
    killed = []

    def kill_rank_1_after_the_first_checkpoint(event):
        if event["kind"] == "train" and event["step"] >= 3 and not killed:
            pid = _worker_pid(1)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(DistributedTrainingError) as failure:
        train_lora(data, data.iloc[:4], settings, work, progress=kill_rank_1_after_the_first_checkpoint)
    message = str(failure.value)
    assert killed and "training in 2 processes failed (exit code" in message
    assert "SIGKILL" in message  # torchrun's report of the killed rank, from the stderr tail
    assert _worker_pid(0) is None  # torchrun stopped the other rank
    assert not (work / "adapter").exists()
    assert (work / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").is_file()
    shutil.copytree(work / "checkpoints", tmp_path / "on-one-gpu" / "checkpoints")

    # the asset, on the same rows and settings: dataset_split's train and validation rows
    split = pd.concat([data.assign(split="train"), data.iloc[:4].assign(split="validation")]).assign(field="arts")
    context = dg.build_asset_context()
    export = lora_adapter(context, settings=PipelineSettings(
        profile="demo", training=settings.model_dump(mode="json")), dataset_split=split)
    metadata = context.get_output_metadata("result")
    resumed_from = metadata["resumed_from_step"]
    assert resumed_from in (2, 4)  # the newest checkpoint when rank 1 died, named in the error
    assert f"checkpoint-{resumed_from}, is kept and a rerun resumes from it" in message
    assert metadata["processes"] == 2 and metadata["device"] == "cpu" and metadata["tokens_seen"] == one.tokens_seen
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["result"]["global_step"] == STEPS and manifest["result"]["processes"] == 2

    # the same checkpoints also resume in one process (processes is not part of their fingerprint)
    alone = train_lora(data, data.iloc[:4], _settings(tiny_model_dir, processes=1), tmp_path / "on-one-gpu")
    assert alone.resumed_from_step == resumed_from and alone.global_step == STEPS
    a = _adapter(one)
    for other in (load_file(export / "adapter" / "adapter_model.safetensors"), _adapter(alone)):
        for name in a:
            torch.testing.assert_close(other[name], a[name], atol=1e-4, rtol=1e-3)


def test_an_error_in_a_process_surfaces_with_its_stderr(tiny_model_dir, tmp_path):
    data = _examples(4)
    settings = _settings(tiny_model_dir, base_model=str(tmp_path / "no-such-model"))
    with pytest.raises(DistributedTrainingError) as failure:
        train_lora(data, data, settings, tmp_path / "run")
    message = str(failure.value)
    assert "no checkpoint was written yet" in message
    assert "no-such-model" in message  # the exception raised in the training processes



class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_an_interrupt_in_the_caller_stops_every_process(tiny_model_dir, tmp_path):
    """An exception in the calling process (Dagster's interrupt when a run is terminated, here `progress`
    raising) stops the launcher and the training processes instead of leaving them to run on."""
    import psutil

    data = _examples(N_EXAMPLES)
    started: list[psutil.Process] = []
    # children from earlier tests (e.g. multiprocessing's resource tracker) live on; count only this run's
    earlier = {child.pid for child in psutil.Process().children(recursive=True)}

    def interrupt_at_step_2(event):
        if event["kind"] == "train" and event["step"] == 2:
            started.extend(c for c in psutil.Process().children(recursive=True) if c.pid not in earlier)
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_lora(data, data.iloc[:4], _settings(tiny_model_dir, epochs=50), tmp_path, progress=interrupt_at_step_2)
    assert len(started) == 3  # the launcher and 2 training processes
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == []
