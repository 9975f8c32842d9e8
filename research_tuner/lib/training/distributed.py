"""Data-parallel LoRA training in several processes, one per GPU, started with Accelerate's launcher.

`run_distributed` writes the data and settings to `output_dir/distributed/`, then runs

    python -m accelerate.commands.launch --multi_gpu --num_processes N ... -m research_tuner.lib.training.distributed_worker spec.json

Each process trains with the Hugging Face `Trainer`, which wraps the model in DistributedDataParallel and
gives every process its own share of each optimizer step's examples. Rank 0 writes the adapter, tokenizer,
training log and plot (as single-process training does) and a `result.json`; it prints every log entry as a
`PROGRESS_PREFIX` line, which the caller's `progress` gets. Checkpoints are written by the Trainer (rank 0
the weights and optimizer, every rank its random state), so a failed run resumes from the last one.

`--multi_gpu` is Accelerate's flag for N local processes through torchrun. On a machine without CUDA the same
launch gives N CPU processes that join with gloo (how the tests run it); `--cpu` would start one process only
(Accelerate runs several CPU processes through mpirun).
"""

from __future__ import annotations

import collections
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.lib.shared.hardware import HardwarePlan, physical_cores
from research_tuner.lib.training.checkpoints import last_checkpoint
from research_tuner.lib.training.result import TrainingResult

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings

log = logging.getLogger(__name__)

WORKER_MODULE = "research_tuner.lib.training.distributed_worker"
#: Rank 0's stdout lines that carry a log entry as JSON.
PROGRESS_PREFIX = "@research_tuner.progress "
RESULT_FILE = "result.json"
SPEC_FILE = "spec.json"
#: Lines of the processes' stderr kept for the error message of a failed run.
STDERR_TAIL_LINES = 60
_PROGRESS_BAR = re.compile(r"\|\s*\d+/\d+ \[")


class DistributedTrainingError(RuntimeError):
    """A training process failed; the message ends with the last lines the processes wrote to stderr."""


def visible_cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_processes(settings: TrainingSettings, cuda_devices: int | None = None) -> int:
    """The number of training processes `settings.processes` asks for on a machine with `cuda_devices` GPUs
    (None: this machine's), or a SettingsError that says what to change."""
    cuda_devices = visible_cuda_devices() if cuda_devices is None else cuda_devices
    if settings.processes == "auto":
        processes = max(1, cuda_devices)
    else:
        processes = int(settings.processes)
    if processes == 1:
        if cuda_devices > 1:
            log.warning(
                "training.processes=1 on a machine with %d GPUs: the Trainer splits each batch over all of them "
                "in one process (DataParallel), which multiplies the effective batch by %d; set "
                "training.processes=%d (or 'auto') to keep the effective batch, or CUDA_VISIBLE_DEVICES to one GPU",
                cuda_devices, cuda_devices, cuda_devices,
            )
        return 1
    if cuda_devices and processes > cuda_devices:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise SettingsError(
            f"training.processes={processes}, but {cuda_devices} CUDA device(s) are visible"
            + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")
            + f": one process per GPU, so set training.processes to at most {cuda_devices}, or 'auto'"
        )
    settings.accumulation_per_process(processes)  # raises when processes does not divide the accumulation
    if importlib.util.find_spec("accelerate") is None:
        raise SettingsError(f"training.processes={processes} needs the accelerate package: pip install accelerate")
    if not cuda_devices:
        log.warning(
            "training.processes=%d without a CUDA device: %d CPU processes (gloo) share this machine's cores, "
            "each with a share of the threads; meant for testing the multi-GPU path", processes, processes,
        )
    return processes


def launch_command(processes: int, spec_path: Path) -> list[str]:
    """Accelerate's launcher for `processes` local processes running the worker module on `spec_path`."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu",  # N local processes through torchrun; with no CUDA device they train on the CPU (gloo)
        "--num_processes", str(processes),
        "--num_machines", "1",
        "--mixed_precision", "no",  # the Trainer's bf16/fp16 arguments decide the precision
        "--dynamo_backend", "no",
        "--main_process_port", "0",  # a free port, so that two runs on one machine do not collide
        "--module", WORKER_MODULE, str(spec_path),
    ]


def _child_env(processes: int, cuda: bool) -> dict[str, str]:
    import research_tuner

    env = dict(os.environ)
    package_root = str(Path(research_tuner.__file__).resolve().parents[1])  # this checkout, not another install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not cuda:  # the processes share this machine's cores (an explicit OMP_NUM_THREADS is the total)
        total = int(os.environ.get("OMP_NUM_THREADS") or 0) or physical_cores()
        env["OMP_NUM_THREADS"] = str(max(1, total // processes))
    return env


def _write_spec(folder: Path, train, validation, settings, output_dir, resume_from, max_steps, merge,
                report_to: str = "none") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).unlink(missing_ok=True)
    train[["question", "approach"]].to_parquet(folder / "train.parquet", index=False)
    validation[["question", "approach"]].to_parquet(folder / "validation.parquet", index=False)
    spec = {
        "train": str(folder / "train.parquet"),
        "validation": str(folder / "validation.parquet"),
        "settings": settings.model_dump(mode="json"),
        "output_dir": str(output_dir),
        "resume_from": str(resume_from) if resume_from is not None else None,
        "max_steps": max_steps,
        "merge": merge,
        "report_to": report_to,  # the MLflow run reaches the workers through the inherited environment
        "result": str(folder / RESULT_FILE),
    }
    path = folder / SPEC_FILE
    path.write_text(json.dumps(spec, indent=2))
    return path


def _die_with_parent() -> None:
    """Run in the launcher before it starts (Linux): it gets SIGTERM, and passes it to the training processes,
    when the process that started it dies, even by SIGKILL, so that no training runs on without an owner."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: _stop still runs on every exception in the caller
        pass


def _stop(process: subprocess.Popen) -> None:
    """Stop the launcher and every training process (they share its process group)."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def run_distributed(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    settings: TrainingSettings,
    output_dir: Path,
    *,
    processes: int,
    resume_from: Path | None,
    progress: Callable[[dict], None] | None = None,
    merge: bool = False,
    max_steps: int | None = None,
    started: float | None = None,
    report_to: str = "none",
):
    """Train in `processes` data-parallel processes and return rank 0's `TrainingResult`.

    Blocks until they finish. A failed process ends the run (torchrun stops the others) with a
    `DistributedTrainingError` holding the tail of their stderr; an exception in the caller (an interrupt, or
    `progress` raising) stops them. Checkpoints written so far stay for the next call to resume from.
    """
    started = time.perf_counter() if started is None else started
    output_dir = Path(output_dir)
    folder = output_dir / "distributed"
    spec_path = _write_spec(folder, train, validation, settings, output_dir, resume_from, max_steps, merge,
                            report_to)
    command = launch_command(processes, spec_path)
    log.info("training in %d processes: %s", processes, " ".join(command))
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=_child_env(processes, cuda=visible_cuda_devices() > 0),
        start_new_session=True,  # its own process group, so that _stop reaches every training process
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def read_stderr() -> None:
        for line in process.stderr:
            line = line.rstrip()
            log.debug("training process: %s", line)
            if line and not _PROGRESS_BAR.search(line):  # the tail is for the error message: no tqdm bars
                stderr_tail.append(line)

    reader = threading.Thread(target=read_stderr, name="training-stderr", daemon=True)
    reader.start()
    try:
        for line in process.stdout:
            if line.startswith(PROGRESS_PREFIX):
                if progress is not None:
                    progress(json.loads(line[len(PROGRESS_PREFIX):]))
            elif line.strip():
                log.info("training process: %s", line.rstrip())
        returncode = process.wait()
        reader.join(timeout=10)
    finally:
        _stop(process)

    result_file = folder / RESULT_FILE
    if returncode != 0 or not result_file.is_file():
        last = last_checkpoint(output_dir / "checkpoints")
        kept = f"the last checkpoint, {last.name}, is kept and a rerun resumes from it" if last else (
            "no checkpoint was written yet")
        reason = f"exit code {returncode}" if returncode != 0 else f"exit code 0 but no {result_file}"
        raise DistributedTrainingError(
            f"training in {processes} processes failed ({reason}); {kept}. Last lines of the processes' stderr:\n"
            + "\n".join(stderr_tail)
        )
    data = json.loads(result_file.read_text())
    data["hardware"] = HardwarePlan(**data["hardware"]) if data.get("hardware") else None
    for name in ("adapter_dir", "tokenizer_dir", "loss_curve_png", "merged_dir"):
        data[name] = Path(data[name]) if data.get(name) else None
    data["log"] = pd.read_parquet(output_dir / "training_log.parquet")
    data["wall_time_s"] = time.perf_counter() - started
    known = {f.name for f in fields(TrainingResult)}
    return TrainingResult(**{k: v for k, v in data.items() if k in known})
