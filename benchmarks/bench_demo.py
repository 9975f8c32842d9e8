"""Benchmark: the demo's whole graph (`research-tuner run`), this checkout against a baseline commit, fresh state.

Each side runs `python -m research_tuner.cli run` in its own source tree (the baseline in a temporary git
worktree of `--baseline`, the same virtual environment) on fresh state: an empty lake, DAGSTER_HOME (the deploy/
dagster.yaml instance), work dir and teacher cache; only the converted embedded model in $RESEARCH_TUNER_CACHE is
shared, and the baseline runs first, so neither side pays the conversion. The sides run one after the other:
nothing else may run meanwhile (two CPU-heavy processes on 2 cores slow each other several times over).

Reported per side: the CLI's whole-graph seconds, the seconds of each job it launched, the seconds of each step
summed over runs (from the instance's step stats), and the "Over all fields" lines of the evaluation table it
prints; then baseline / current. The embedded teacher samples, so sides whose code samples differently write
different data and their tables differ: the result says so rather than hiding it. Results go to
benchmarks/results/demo.json.

    python benchmarks/bench_demo.py --baseline 6e6ac39 [--fields arts,humanities] [-- extra run arguments]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import busy_cpu_seconds, machine, write_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DONE = re.compile(r"^\s+(?P<label>.+) done in (?P<seconds>\d+) s$")
WHOLE = re.compile(r"whole graph done in (?P<seconds>\d+) s")


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Seconds per step key, summed over every run the instance holds."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        totals: dict[str, float] = defaultdict(float)
        for run in instance.get_runs():
            for stat in instance.get_run_step_stats(run.run_id):
                if stat.start_time and stat.end_time:
                    totals[stat.step_key] += stat.end_time - stat.start_time
    return {k: round(v, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def data_counts(lake: Path) -> dict[str, int]:
    """How much data the run made, so that a faster side is seen not to be one that made less."""
    import pandas as pd

    def rows(asset: str) -> pd.DataFrame:
        files = sorted((lake / asset).rglob("*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    split, generations = rows("dataset_split"), rows("eval_generations")
    return {"raw_questions": len(rows("raw_questions")), "kept_questions": int(rows("question_clusters")["keep"].sum()),
            "approaches": len(rows("approaches")), "train": int((split["split"] == "train").sum()),
            "validation": int((split["split"] == "validation").sum()),
            "evaluation_questions": int(generations["question_id"].nunique())}


def run_side(source: Path, scratch: Path, fields: str | None, extra: list[str]) -> dict:
    home = scratch / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RESEARCH_TUNER_WORK": str(scratch / "work"),
           "PYTHONPATH": str(source)}
    env.setdefault("RESEARCH_TUNER_CACHE", str(REPO / ".cache"))
    command = [sys.executable, "-m", "research_tuner.cli", "run", "--lake", str(scratch / "lake"),
               *(["--fields", fields] if fields else []), *extra]
    busy0, start = busy_cpu_seconds(), time.monotonic()
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    busy = busy_cpu_seconds() - busy0
    if done.returncode:
        raise SystemExit(f"{source}: run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    jobs = {m["label"]: int(m["seconds"]) for m in map(DONE.match, lines) if m}
    whole = next(int(m["seconds"]) for m in map(WHOLE.search, lines) if m)
    summary_at = next(i for i, line in enumerate(lines) if line.startswith("Over all fields"))
    return {"whole_graph_s": whole, "process_wall_s": round(wall, 1),
            "cpu_busy_s_of_machine": round(busy, 1), "jobs_s": jobs, "steps_s": step_seconds(home),
            "data": data_counts(scratch / "lake"),
            "over_all_fields": [line.strip() for line in lines[summary_at + 1:summary_at + 5] if line.strip()]}


def commit_of(tree: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare against")
    parser.add_argument("--fields", help="comma-separated fields (default: all 8)")
    parser.add_argument("extra", nargs="*", help="more `research-tuner run` arguments, after --")
    args = parser.parse_args()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.strip()
    result = {"machine": machine(), "fields": args.fields or "all 8", "extra_arguments": args.extra,
              "current": {"commit": commit_of(REPO) + ("+uncommitted" if dirty else "")}}
    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        tmp = Path(tmp)
        worktree = tmp / "baseline_src"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=REPO, check=True,
                       capture_output=True)
        try:
            result["baseline"] = {"commit": commit_of(worktree)}
            print(f"baseline {result['baseline']['commit']} ...", flush=True)
            result["baseline"] |= run_side(worktree, tmp / "baseline", args.fields, args.extra)
            print(f"  {result['baseline']['whole_graph_s']} s; current {result['current']['commit']} ...", flush=True)
            result["current"] |= run_side(REPO, tmp / "current", args.fields, args.extra)
            print(f"  {result['current']['whole_graph_s']} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, capture_output=True)
    base, cur = result["baseline"], result["current"]
    result["speedup_whole_graph"] = round(base["whole_graph_s"] / cur["whole_graph_s"], 2)
    result["same_table"] = base["over_all_fields"] == cur["over_all_fields"]
    path = write_results("demo", result)
    print(f"whole graph: baseline {base['whole_graph_s']} s, current {cur['whole_graph_s']} s, "
          f"{result['speedup_whole_graph']}x; same evaluation table: {result['same_table']} -> {path}")


if __name__ == "__main__":
    main()
