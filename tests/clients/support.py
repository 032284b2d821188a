"""Running Particle's own clients (installed by `npm ci` in this folder) against a real server.

Missing node, npm or node_modules is a failure, never a skip: the suite's promise is that
Particle's clients work, and a harness that cannot run proves nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"


def node() -> str:
    path = shutil.which("node")
    assert path is not None, "node is not installed: the client harness needs node 20 and npm (scripts/test)"
    return path


def require_package(name: str) -> Path:
    package = NODE_MODULES / name
    assert package.is_dir(), f"{package} is missing: run `npm ci` in tests/clients (scripts/test does)"
    return package


def run_node(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node(), str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=HERE)
