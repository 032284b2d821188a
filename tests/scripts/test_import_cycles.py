"""scripts/import_cycles.py: a cycle counts even when it hides in a function or behind TYPE_CHECKING."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    # scripts/ is not a package: load the file as the test harness would run it
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "scripts" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cycles = _load()


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in files.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))


def test_strongly_connected_finds_only_groups_of_two_or_more() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}, "e": set()}
    assert cycles.strongly_connected(edges) == [["a", "b", "c"]]


def test_hidden_cycles_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _package(
        tmp_path,
        "hidden",
        {
            "parent": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from .child import Child
                """,
            "child": """
                def make() -> object:
                    from .parent import TYPE_CHECKING  # at call time only: still an arrow back
                    return TYPE_CHECKING
                class Child: ...
                """,
            "leaf": "X = 1\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles.import_cycles("hidden") == [["hidden.child", "hidden.parent"]]
    assert cycles.main(["hidden"]) == 1
    sys.modules.pop("hidden", None)


def test_server_has_no_import_cycles() -> None:
    assert cycles.import_cycles("server") == []
