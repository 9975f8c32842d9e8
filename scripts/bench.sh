#!/usr/bin/env bash
# Sets up, then runs every benchmark in benchmarks/ one after another; each compares against its baselines in
# the same run and writes benchmarks/results/<name>.json; tables.py then rewrites the tables of
# benchmarks/README.md from those files. They time the CPU: run nothing else meanwhile (about 50 minutes on the
# 2-core reference machine; --with-1m adds about 10).
# Extra arguments go to bench_dedup.py (e.g. --with-1m for the 1M-question run the dedup target is set at).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export RESEARCH_TUNER_CACHE=${RESEARCH_TUNER_CACHE:-$PWD/.cache}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}   # the benchmarks reuse the tests' loopback server (research_tuner_tests/support)
python benchmarks/bench_eval_generation.py
python benchmarks/bench_sampling.py
python benchmarks/bench_teacher.py
python benchmarks/bench_dedup.py "$@"
python benchmarks/bench_semantic_rule.py
python benchmarks/bench_training.py
python benchmarks/bench_step_profile.py
python benchmarks/tables.py --write   # the tables of benchmarks/README.md, from the results files
python benchmarks/tables.py --only summary
ls -l benchmarks/results/
