#!/usr/bin/env bash
# Creates .venv and installs zhcls with its training and test dependencies.
# torch 2.13.0 is installed first, on its own: it is the CPU build, and a plain `torch`
# requirement could otherwise pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
