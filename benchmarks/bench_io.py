"""Where the benchmarks write their results, and the machine facts every results file carries.

`RESEARCH_TUNER_BENCH_RESULTS` points the results somewhere else than benchmarks/results/ (a smoke run with small
settings must not overwrite the figures the READMEs quote).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

HERE = Path(__file__).resolve().parent


def results_path(name: str) -> Path:
    """benchmarks/results/<name>.json, or under $RESEARCH_TUNER_BENCH_RESULTS."""
    folder = Path(os.environ.get("RESEARCH_TUNER_BENCH_RESULTS") or HERE / "results")
    return folder / f"{name}.json"


def write_results(name: str, result: dict) -> Path:
    path = results_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_results(name: str) -> dict | None:
    path = results_path(name)
    return json.loads(path.read_text()) if path.exists() else None


def machine() -> dict:
    import numpy
    import torch

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__}
