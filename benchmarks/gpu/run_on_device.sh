#!/usr/bin/env bash
# The GPU run of benchmarks/bench_training_gpu.py as one command for the device tool, after
# `bash benchmarks/gpu/fetch_wheels.sh` here:
#   run(command="bash benchmarks/gpu/run_on_device.sh", carry=["benchmarks/gpu/carry"], timeout_s=420)
# It installs the carried wheels into /tmp/site (nothing can be fetched there), records the GPU and the image's
# versions, and runs the benchmark; results and log go to $OUT (the tool brings them back), else to
# benchmarks/results/. Extra arguments go to the benchmark (--budget-s, --steps, --groups ...).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
if [ ! -f benchmarks/gpu/carry/tokenizer/tokenizer.json ] || ! ls benchmarks/gpu/carry/wheels/*.whl >/dev/null 2>&1; then
    echo "benchmarks/gpu/carry/ is incomplete: run 'bash benchmarks/gpu/fetch_wheels.sh' first and pass carry=[\"benchmarks/gpu/carry\"]"
    exit 2
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    benchmarks/gpu/carry/wheels/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    RESEARCH_TUNER_CACHE=/tmp/research_tuner_cache
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$PY" -m pip list 2>/dev/null | grep -iE '^(torch|triton|accelerate|pyarrow|fsspec|huggingface.hub|tokenizers|regex|numpy|pandas) '
} 2>&1 | tee "$RESULTS/training_gpu_machine.txt"
"$PY" benchmarks/bench_training_gpu.py --out "$RESULTS/training_gpu.json" "$@" 2>&1 | tee "$RESULTS/training_gpu.log"
exit "${PIPESTATUS[0]}"
