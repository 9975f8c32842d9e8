"""One data-parallel training process: `python -m research_tuner.lib.training.distributed_worker spec.json`.

Started by Accelerate's launcher from lib/training/distributed.py (every rank runs it). Rank 0 prints each log entry
as a progress line and writes the result JSON; see lib/training/distributed.py.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from research_tuner.lib.training.distributed import PROGRESS_PREFIX
from research_tuner.lib.training.train import train_in_process
from research_tuner.settings import TrainingSettings


def _plain(value):
    """JSON-safe: numbers as floats (NaN as None), paths as strings."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy and torch scalars
        return _plain(value.item())
    return value


def _emit(event: dict) -> None:
    print(PROGRESS_PREFIX + json.dumps({k: _plain(v) for k, v in event.items()}, default=str), flush=True)


def _use_own_gpu() -> None:
    """Make this rank's GPU the current CUDA device before the model loads: `shared.models.load_causal_lm` moves
    the model to "cuda", which would otherwise be GPU 0 in every process (all N copies on one GPU until the
    Trainer moves them)."""
    import torch

    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:  # pragma: no cover - needs GPUs
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def main(argv: list[str] | None = None) -> int:
    (spec_path,) = argv if argv is not None else sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text())
    settings = TrainingSettings.model_validate(spec["settings"])
    rank = int(os.environ.get("RANK", "0"))
    _use_own_gpu()
    result = train_in_process(
        pd.read_parquet(spec["train"]),
        pd.read_parquet(spec["validation"]),
        settings,
        Path(spec["output_dir"]),
        resume_from=Path(spec["resume_from"]) if spec["resume_from"] else None,
        progress=_emit if rank == 0 else None,
        merge=bool(spec["merge"]),
        max_steps=spec["max_steps"],
        report_to=spec.get("report_to", "none"),
    )
    if result is not None:  # rank 0
        data = {f.name: getattr(result, f.name) for f in fields(result) if f.name != "log"}
        data["hardware"] = asdict(result.hardware) if result.hardware is not None else None
        path = Path(spec["result"])
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps({k: _plain(v) for k, v in data.items()}, indent=2))
        staging.replace(path)  # the caller never reads half a file
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
