# Sourced by scripts/serve and scripts/test: make ./.venv with Fleetgate installed (editable).
# EXTRAS selects optional dependency groups, e.g. EXTRAS=test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${FLEETGATE_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
SPEC="$ROOT"
if [ -n "${EXTRAS:-}" ]; then SPEC="$ROOT[$EXTRAS]"; fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
