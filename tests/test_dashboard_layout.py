"""The dashboard's shape: data modules shape data and import nothing of Dash, pages import no
other page, no import cycle (and none dodged by an import inside a function), no state passed
through attributes of the Dash app, and the CSS served from dashboard/assets/.

The import rules are read from the source (every import statement, at any depth), so a cycle
hidden in a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dashboard.app import create_app
from tests.test_dashboard_overview import FakeSource

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dashboard"
# the modules that shape data: what the pages and figures show, no Dash in them
DATA = sorted({p.stem for p in PACKAGE.glob("*_data.py")}
              | {"url_state", "formatting", "colors", "plot_text", "source", "prometheus"})
# the command modules import the app lazily, so that `mcp-slo --help` and the other commands
# do not load Dash (mcp_slo.cli imports a command's module only when it runs)
COMMANDS = {"dashboard.dashboard_cli", "dashboard.serve_cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.Module, name: str) -> set[str]:
    """Every module of dashboard/ that `tree` (the module `name`) imports, at any depth."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{name} line {node.lineno}: the project imports absolutely"
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from dashboard import overview_data`
    known = set(modules())
    return {m for m in out if m in known and m != name}


@pytest.mark.integration
def test_data_modules_import_nothing_of_dash():
    code = (f"import sys\nimport {', '.join(f'dashboard.{m}' for m in DATA)}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dash', 'plotly', 'flask')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_data_modules_import_no_page_and_not_the_app():
    graph = {name: imported(tree, name) for name, tree in modules().items()}
    for name in DATA:
        views = {m for m in graph[f"dashboard.{name}"] if m.startswith("dashboard.pages") or m == "dashboard.app"}
        assert not views, f"dashboard.{name} imports {sorted(views)}"


def test_pages_import_no_other_page():
    for name, tree in modules().items():
        if name.startswith("dashboard.pages."):
            others = {m for m in imported(tree, name) if m.startswith("dashboard.pages")}
            assert not others, f"{name} imports {sorted(others)}: shared components live in dashboard.components"


def test_there_is_no_import_cycle():
    graph = {name: imported(tree, name) for name, tree in modules().items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name):], name]))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_no_import_hides_in_a_function():
    for name, tree in modules().items():
        if name in COMMANDS:
            continue
        functions = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
        hidden = [f"line {node.lineno}" for f in functions
                  for node in ast.walk(f) if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert not hidden, f"{name} imports inside a function: {', '.join(hidden)}"


def test_no_state_is_passed_through_attributes_of_the_app():
    """`app.layout` is how Dash takes a layout; anything else set on the app is state smuggled
    to whoever reads it back."""
    for name, tree in modules().items():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AnnAssign, ast.AugAssign)) else []
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "app":
                    assert t.attr == "layout", f"{name} line {node.lineno} sets app.{t.attr}"


def test_the_css_is_served_from_the_assets_folder():
    client = create_app(FakeSource()).server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "<style" not in page
    assert "/assets/dashboard.css" in page
    css = client.get("/assets/dashboard.css")
    assert css.status_code == 200 and "table.overview" in css.get_data(as_text=True)


def test_the_assets_are_package_data():
    with open(ROOT / "pyproject.toml", "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert "assets/*" in package_data.get("dashboard", [])
