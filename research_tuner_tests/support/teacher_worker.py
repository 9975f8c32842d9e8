"""A partition's approach generation in its own process, for kill-and-rerun tests and the benchmark.

python -m research_tuner_tests.support.teacher_worker --base-url URL --cache DB --out OUT.json --questions N [--set k=v]
writes the valid rows and the usage to OUT.json when (and only when) it finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

import pandas as pd

from research_tuner.lib.generation.approaches import generate_approaches
from research_tuner.lib.shared.ids import question_id
from research_tuner.lib.teacher.base import Usage
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.settings import load_profile, parse_assignments
from research_tuner.settings.profile import deep_merge


def synthetic_questions(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        q = f"How does factor {i} shape the outcomes of small-town archives in modern history?"
        rows.append({"question_id": question_id("humanities", "history", q), "field": "humanities",
                     "subdomain": "history", "question": q})
    return pd.DataFrame(rows)


def start_worker(base_url: str, tmp_path, out: str, questions: int, settings: list[str],
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """This module in a subprocess (cache in tmp_path/cache.sqlite, result in tmp_path/out)."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    cmd = [sys.executable, "-m", "research_tuner_tests.support.teacher_worker", "--base-url", base_url,
           "--cache", str(tmp_path / "cache.sqlite"), "--out", str(tmp_path / out), "--questions", str(questions)]
    for assignment in settings:
        cmd += ["--set", assignment]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--set", action="append", default=[], help="teacher.key=value, as on the CLI")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-worker")
    overrides = deep_merge({"teacher": {"base_url": args.base_url}}, parse_assignments(args.set))
    cfg = load_profile("paper", overrides=overrides).teacher
    teacher = build_teacher(cfg, args.cache)
    if "TEACHER_BACKOFF_S" in os.environ:  # tests shorten the backoff; the benchmark keeps the default
        teacher.inner.backoff_base_s = float(os.environ["TEACHER_BACKOFF_S"])
    usage = Usage()
    start = time.monotonic()
    valid, failed = generate_approaches(teacher, synthetic_questions(args.questions), cfg, usage)
    with open(args.out, "w") as out:
        json.dump({"valid": valid.to_dict("records"), "failed": failed.to_dict("records"), "usage": asdict(usage),
                   "wall_s": time.monotonic() - start}, out)
    teacher.close()


if __name__ == "__main__":
    main()
