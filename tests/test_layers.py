"""The layers (docs/DESIGN.md) hold: import-linter checks the contracts in pyproject.toml,
and breaks them when a lower layer imports a higher one or a package grows a cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("collector", "slo", "alerts", "grafana", "dashboard", "demo", "bench", "mcp_slo")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "pyproject.toml"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the packages and pyproject.toml, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.integration
def test_the_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("module, line, broken", [
    ("collector/_upward.py", "import slo.spec\n", "Each layer imports only the layers below it"),
    ("slo/_upward.py", "import dashboard.app\n", "Each layer imports only the layers below it"),
    ("alerts/_upward.py", "import grafana.generate\n", "Each layer imports only the layers below it"),
    ("dashboard/_across.py", "import grafana.generate\n", "Each layer imports only the layers below it"),
    ("slo/plan_upward.py", "import slo.engine.store\n", "The SLO library does not import the engine service"),
    ("slo/engine/_cycle.py", "", "No import cycles inside a package"),
])
def test_an_upward_import_or_a_cycle_breaks_them(tree, module, line, broken):
    if module.endswith("_cycle.py"):
        # store imports _cycle, which imports api, which imports store: a cycle in slo.engine
        (tree / module).write_text("import slo.engine.api\n")
        store = tree / "slo" / "engine" / "store.py"
        store.write_text(store.read_text() + "\nimport slo.engine._cycle  # noqa\n")
    else:
        (tree / module).write_text(line)
    result = lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{broken} BROKEN" in result.stdout
