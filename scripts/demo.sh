#!/usr/bin/env bash
# Sets up, then runs the whole graph on the embedded default (demo profile, all 8 fields, offline)
# and prints the per-field evaluation table. Extra arguments go to `research-tuner run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
export RESEARCH_TUNER_CACHE=${RESEARCH_TUNER_CACHE:-$PWD/.cache}
exec research-tuner run "$@"
