"""What the GPU benchmark measures: each optimizer step's time, tokens and loss, peak GPU memory, the same
machine's bf16 matmul peak, a confidence interval for a rate, and which installed packages a run imported."""

from __future__ import annotations

import importlib.metadata
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository
#: The project's own code (the virtualenv may lie inside the repository too).
OWN_CODE = (str(ROOT / "research_tuner"), str(ROOT / "benchmarks"))


def step_clock(device: str):
    """A `TrainerCallback` that records each optimizer step: its seconds (from the end of the step before, so
    data loading and logging count; on CUDA after a synchronisation, so the GPU's work is done), the real
    tokens it trained on (the Trainer's non-padding count) and the loss it logged (logging_steps=1)."""
    import torch
    from transformers import TrainerCallback

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    class StepClock(TrainerCallback):
        def __init__(self):
            self.steps: list[dict] = []
            self.losses: dict[int, float] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            sync()
            self._mark, self._tokens = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            now = time.perf_counter()
            self.steps.append({"step": state.global_step, "seconds": now - self._mark,
                               "tokens": state.num_input_tokens_seen - self._tokens})
            self._mark, self._tokens = now, state.num_input_tokens_seen

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])

    return StepClock()


def rate(steps: list[dict], warmup: int, resamples: int = 2000) -> dict:
    """Tokens per second over the steps after `warmup` (total tokens / total seconds), a 95% bootstrap interval
    over those steps, and two steadiness checks: the spread of step times and the second half's rate over the
    first half's (1.0 when steady)."""
    timed = steps[warmup:]
    if not timed:
        return {"tokens_per_s": None, "timed_steps": 0}

    def ratio(sample):
        return sum(s["tokens"] for s in sample) / sum(s["seconds"] for s in sample)

    rng = random.Random(0)
    boot = sorted(ratio([rng.choice(timed) for _ in timed]) for _ in range(resamples))
    seconds = [s["seconds"] for s in timed]
    mean_s = sum(seconds) / len(seconds)
    half = len(timed) // 2
    return {
        "tokens_per_s": ratio(timed),
        "ci95": [boot[int(0.025 * resamples)], boot[int(0.975 * resamples) - 1]],
        "timed_steps": len(timed),
        "tokens_per_step": sum(s["tokens"] for s in timed) / len(timed),
        "step_seconds_mean": mean_s,
        "step_seconds_cv": (sum((s - mean_s) ** 2 for s in seconds) / len(seconds)) ** 0.5 / mean_s,
        "second_half_over_first": ratio(timed[half:]) / ratio(timed[:half]) if half else None,
    }


def matmul_peak_flops(device: str) -> dict:
    """The bf16 matrix-product rate of this machine, measured now: 8192^3 on a GPU (CUDA events, mean of 10
    after 3 warm-ups, random data), 2048^3 on a CPU (the size ../shared/FACTS.md used)."""
    import torch

    size, repeats = (8192, 10) if device == "cuda" else (2048, 5)
    a = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    b = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    for _ in range(3):
        a @ b
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeats):
            a @ b
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds = time.perf_counter() - started
    return {"flops_per_s": 2 * size**3 * repeats / seconds, "size": size, "repeats": repeats}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _listed(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {_normalise(line.split("==")[0]) for line in lines if line}


def start_import_audit() -> set[str]:
    """Record, from now on, the top-level modules that the project's own files (research_tuner/, benchmarks/)
    import; returns the set it fills. Third-party packages' own optional imports are theirs to guard."""
    import builtins

    original, imported = builtins.__import__, set()

    def audited(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and globals and str(globals.get("__file__") or "").startswith(OWN_CODE):
            imported.add(name.partition(".")[0])
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = audited
    return imported


def missing_on_device(imported: set[str]) -> list[str]:
    """Distributions of `imported` modules that neither the GPU machine's image has (device_packages.txt) nor
    the run carries as wheels (wheels.txt): each would be an ImportError there."""
    allowed = _listed(HERE / "device_packages.txt") | _listed(HERE / "wheels.txt")
    owners = importlib.metadata.packages_distributions()
    needed = set()
    for top in imported:
        module = sys.modules.get(top)
        if top in sys.stdlib_module_names or str(getattr(module, "__file__", "") or "").startswith(OWN_CODE):
            continue  # the standard library, or the project's own code (research_tuner, benchmarks)
        needed.update(_normalise(d) for d in owners.get(top, [top]))
    return sorted(needed - allowed)
