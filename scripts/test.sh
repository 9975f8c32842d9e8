#!/usr/bin/env bash
# Sets up, then runs the test suite (offline). Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
RESEARCH_TUNER_TEST_DEPS=1 bash scripts/setup.sh
. .venv/bin/activate
export RESEARCH_TUNER_CACHE=${RESEARCH_TUNER_CACHE:-$PWD/.cache}
exec python -m pytest "$@"
