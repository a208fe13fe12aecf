#!/usr/bin/env bash
# Make .venv-whisperx: the package with its `gpu` extra (whisperx) beside the main .venv, for
# `make test-whisperx`. A venv of its own because whisperx 3.8.6 pins torch, torchaudio and
# torchvision to the 2.8 series while the main venv keeps the newer CPU torch.
#
# On x86_64 Linux, PyPI carries only the CUDA builds of torch 2.8 (several GB with the nvidia
# libraries); they run on the CPU too. Set TORCH_INDEX_URL (for example
# https://download.pytorch.org/whl/cpu) to take the CPU builds from an index that has them.
# Safe to re-run: skipped when the stamp is newer than pyproject.toml and this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv-whisperx
stamp=$VENV/.bootstrap-stamp

if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt "$0" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "$VENV/bin/python" -m pip install -q --index-url "$TORCH_INDEX_URL" \
    'torch~=2.8.0' 'torchaudio~=2.8.0' 'torchvision~=0.23.0'
fi
"$VENV/bin/python" -m pip install -q -e '.[dev,gpu]'
touch "$stamp"
