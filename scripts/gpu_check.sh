#!/usr/bin/env bash
# Verify the sglang engine on a GPU machine (see usage). Exit 0: every verdict valid.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/gpu_check.sh MODEL [options]             launch an sglang server for MODEL
       scripts/gpu_check.sh --endpoint URL [MODEL] [options]   use a running server or router

options: --num-workers N  --num-gpu-per-worker N  --server-args "FLAGS"
         --n 50  --num-shots 3  --chat  --layout one_request|per_field
         --log-path FILE  --json FILE
example: scripts/gpu_check.sh Qwen/Qwen2.5-0.5B-Instruct
         scripts/gpu_check.sh --endpoint http://127.0.0.1:30000
Set PYTHON to choose the interpreter (default: python3).
EOF
}

if [[ $# -eq 0 ]]; then
    usage >&2
    exit 2
fi
if [[ "$1" == "-h" || "$1" == "--help" ]]; then
    usage
    exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null; then
    echo "gpu_check: no '$python' on PATH (set PYTHON=...)" >&2
    exit 2
fi
if ! "$python" -c "import icrm_sgl, sglang" 2>/dev/null; then
    echo "gpu_check: icrm_sgl or sglang is not importable; run: pip install -e ." >&2
    exit 2
fi
exec "$python" "$here/gpu_check.py" "$@"
