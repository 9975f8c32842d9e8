"""Where the benchmarks write their results, and the machine facts they carry: versions, the matmul rate this
machine gives now, and the CPU time other processes took while a benchmark ran.

`RESEARCH_TUNER_BENCH_RESULTS` points the results somewhere else than benchmarks/results/ (a smoke run with small
settings must not overwrite the figures the READMEs quote).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
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


def matmul_gflops(m: int, k: int, n: int, dtype=None, seconds: float = 1.0) -> float:
    """GFLOP/s of an (m x k) @ (k x n) product in `dtype` (default bfloat16), repeated for about `seconds` after a
    warm-up."""
    import torch

    dtype = dtype or torch.bfloat16
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or repeats < 5:
        a @ b
        repeats += 1
    return 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9


def busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds this process's finished children have used."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
