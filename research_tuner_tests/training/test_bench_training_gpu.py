"""benchmarks/bench_training_gpu.py --dry-run on the CPU: the GPU benchmark's own code path with a tiny model, so
the script is known to work before GPU time is spent; and the wheel list it carries to the GPU machine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU_ONLY = {"padding_free_flex", "loss_liger", "compile"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-gpu") / "dry.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training_gpu.py"), "--dry-run",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow  # one dry run for these four: ~1 min of 2 CPU cores
def test_every_way_runs_or_says_what_it_needs(dry_run):
    assert dry_run["status"] == "done" and dry_run["device"]["kind"] == "cpu"
    for name, way in dry_run["ways"].items():
        if name in GPU_ONLY:
            assert way["skipped"].startswith("needs cuda"), name
            continue
        assert "error" not in way, (name, way.get("error"))
        assert [s["step"] for s in way["steps"]] == [1, 2, 3], name  # 1 warm-up + 2 timed steps
        assert way["tokens_per_s"] > 0 and way["timed_steps"] == 2
        assert all(math.isfinite(v) for v in way["losses"].values()) and len(way["losses"]) == 3
    # padding_free_flex cannot run here, so the group falls back to SDPA's padding-free rows
    assert "tokens_per_s" in dry_run["ways"]["padding_free_sdpa"]


@pytest.mark.slow  # one dry run for these four: ~1 min of 2 CPU cores
def test_the_ways_are_configured_as_they_say(dry_run):
    ways = dry_run["ways"]
    trl = ways["trl_defaults"]["config"]
    assert trl["gradient_checkpointing"] and trl["weights_dtype"] == "float32" and not trl["padding_free"]
    assert (trl["per_device_batch"], trl["accumulation"]) == (2, 4)
    assert ways["project_paper"]["config"]["gradient_checkpointing"]  # the paper profile says so
    assert not ways["checkpointing_auto"]["config"]["gradient_checkpointing"]  # off on a CPU
    assert ways["padding_free_sdpa"]["padding_waste"] == 0.0 < ways["project_paper"]["padding_waste"]
    assert ways["micro_batch_8"]["config"]["per_device_batch"] == 8
    # each option is applied on top of the best so far
    for name in dry_run["kept"]:
        assert ways[name]["kept"] and ways[name]["compared_with"] in ways


@pytest.mark.slow  # one dry run for these four: ~1 min of 2 CPU cores
def test_the_first_step_loss_is_the_plain_paths_for_every_project_way(dry_run):
    """LoRA's B starts at zero: step 1 is the base model's loss on the same 8 examples, whatever the kernels."""
    reference = dry_run["ways"]["project_paper"]["first_step_loss"]
    for name, way in dry_run["ways"].items():
        if way["trainer"] == "project" and "skipped" not in way:
            assert way["first_step_loss"] == pytest.approx(reference, rel=1e-3), name


@pytest.mark.slow  # one dry run for these four: ~1 min of 2 CPU cores
def test_the_figures_and_what_the_gpu_machine_must_import(dry_run):
    figures = dry_run["figures"]
    assert figures["flops_per_token"] == 4 * dry_run["ways"][dry_run["best"]]["base_params"]
    assert 0 < figures["share_of_bf16_peak"] and figures["paper_training_minutes"] > 0
    assert figures["paper_training_tokens"] == pytest.approx(9148 * 2 * dry_run["examples"]["tokens_mean"])
    assert set(dry_run["targets"]) == {"speedup_at_least_1.5x", "at_least_40pct_of_bf16_peak",
                                       "paper_training_under_15_min"}
    assert dry_run["imports_missing_on_device"] == []  # the image plus the carried wheels hold everything


def test_the_carried_wheels_are_pinned_to_what_this_environment_runs(tmp_path):
    """The GPU run carries the versions the tests here ran with: fetch_wheels.sh pins each bare name of
    benchmarks/gpu/wheels.txt to the installed version, keeps a pinned line (liger-kernel: CUDA only, not here)
    as written, and stops on a bare name that is not installed."""
    from importlib.metadata import version

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu.carry import pinned

    pins = dict(pin.split("==") for pin in pinned(ROOT / "benchmarks/gpu/wheels.txt"))
    assert pins.pop("liger-kernel") == "0.8.5"
    assert pins and all(version(name) == wanted for name, wanted in pins.items())
    listing = tmp_path / "wheels.txt"
    listing.write_text("trl  # the trainer\nno-such-distribution-here\n")
    with pytest.raises(SystemExit, match="no-such-distribution-here .* is not installed here"):
        pinned(listing)


def test_the_carried_wheels_requirements_are_met_on_the_gpu_machine():
    """Each carried distribution's requirements (read from the installed copies: the same versions as the
    wheels) are in the GPU machine's image or carried too; an extra or another platform's need does not count."""
    from importlib.metadata import requires

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu.carry import listed, unmet

    carried = sorted(listed(ROOT / "benchmarks/gpu/wheels.txt") - {"liger-kernel"})  # CUDA only: not here
    assert unmet({name: requires(name) or [] for name in carried}) == {}
    assert unmet({"x": ["dagster>=1.13", "bitsandbytes; sys_platform == 'win32'", "rich; extra == 'cli'"]}) == {
        "x": ["dagster>=1.13"]}
