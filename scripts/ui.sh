#!/usr/bin/env bash
# The Dagster web UI and daemon (`dagster dev`) for this project, on this machine only:
# http://127.0.0.1:3000 unless RESEARCH_TUNER_UI_HOST / RESEARCH_TUNER_UI_PORT say otherwise. Binding
# another address (0.0.0.0) exposes every run's logs and the launchpad to the network: put an
# authenticating proxy in front first. Runs, schedules and sensors are stored under $DAGSTER_HOME
# (default .dagster_home, SQLite). Extra arguments go to `dagster dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/dagster ]; then . .venv/bin/activate; fi
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
export RESEARCH_TUNER_CACHE=${RESEARCH_TUNER_CACHE:-$PWD/.cache}
# Teacher steps only wait on the network: let several fields' run side by side (every other pool stays at the
# instance's default limit of 1; research_tuner/executors.py lists the pools).
dagster instance concurrency set teacher "${RESEARCH_TUNER_TEACHER_STEPS:-4}" >/dev/null
# `dagster dev` stops webserver, daemon and code servers on SIGINT (Ctrl-C) but outlives SIGTERM, which is what
# `kill` and service managers send. So it runs as a job in its own process group (set -m), and this script turns
# SIGTERM, SIGINT and SIGHUP into one SIGINT to that whole group, then waits for it to finish.
set -m
dagster dev -h "${RESEARCH_TUNER_UI_HOST:-127.0.0.1}" -p "${RESEARCH_TUNER_UI_PORT:-3000}" "$@" &
dev=$!
trap 'kill -INT -- "-$dev" 2>/dev/null || true' TERM INT HUP
status=0
while kill -0 "$dev" 2>/dev/null; do
  wait "$dev" && status=0 || status=$?   # a trapped signal ends `wait` early: wait again until dagster dev exits
done
exit "$status"
