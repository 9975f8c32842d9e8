#!/usr/bin/env bash
# Sets up, then runs every benchmark in benchmarks/ one after another; each compares against its baseline in
# the same run and writes benchmarks/results/<name>.json. They time the CPU: run nothing else meanwhile.
# Extra arguments go to bench_dedup.py (e.g. --with-1m for the opt-in 1M-question run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export RESEARCH_TUNER_CACHE=${RESEARCH_TUNER_CACHE:-$PWD/.cache}
python benchmarks/bench_eval_generation.py
python benchmarks/bench_teacher.py
python benchmarks/bench_dedup.py "$@"
python benchmarks/bench_semantic_rule.py
python benchmarks/bench_training.py
ls -l benchmarks/results/
