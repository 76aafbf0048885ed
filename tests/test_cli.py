"""The `mcp-slo` command as a whole: one table of commands, one error and one set of exit
codes, one HOST:PORT parser, a clear hint (never a traceback) when a command's extra is not
installed, and loggers named after their modules."""

from __future__ import annotations

import ast
import contextlib
import io
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import httpx
import pytest

from collector.command import FAILED, INCONCLUSIVE, OK, USAGE, CommandError, host_port, parse_host_port
from mcp_slo import cli
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collector", "slo", "alerts", "grafana", "dashboard", "demo", "mcp_slo")
MCP_SLO = [sys.executable, "-m", "mcp_slo"]
EXAMPLE = "examples/slo.yaml"


def run_main(*argv: str) -> tuple[int, str, str]:
    """main(argv) in this process: (exit code, stdout, stderr); argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


# --- HOST:PORT ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("localhost:8050", ("localhost", 8050)),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::]:65535", ("::", 65535)),
    ("slo.example.com:443", ("slo.example.com", 443)),
])
def test_host_port_is_parsed_one_way(text, expected):
    assert parse_host_port(text) == expected
    assert host_port(*expected) == text  # and written back the same way


@pytest.mark.parametrize("text", [
    "", "8080", ":8080", "no-port", "localhost:", "localhost:http", "localhost:65536", "localhost:-1",
    "localhost: 80", "::1:8080", "[::1]", "[::1]8080", "[not-v6]:80", "[127.0.0.1]:80", "a b:80",
    "host/path:80", "localhost:٨٠",
])
def test_a_bad_host_port_is_a_one_line_error_naming_the_option(text):
    with pytest.raises(ValueError) as caught:
        parse_host_port(text, "--dashboard-listen")
    message = str(caught.value)
    assert message.startswith(f"--dashboard-listen {text!r}: use HOST:PORT") and "\n" not in message


@pytest.mark.parametrize("command, option", [("dashboard", "--listen"), ("engine", "--listen"),
                                             ("serve", "--dashboard-listen")])
def test_every_command_refuses_an_ambiguous_address(tmp_path, command, option):
    args = ["--store", str(tmp_path / "e.db")] + (["--config", EXAMPLE] if command != "dashboard" else [])
    code, _, err = run_main(command, *args, option, "::1:8080")
    assert code == USAGE
    assert err == f"mcp-slo {command}: {option} '::1:8080': use HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080\n"


@pytest.mark.integration
def test_the_engine_listens_on_an_ipv6_address(tmp_path):
    port = free_port()
    process = subprocess.Popen([*MCP_SLO, "engine", "--config", EXAMPLE, "--prometheus", "http://127.0.0.1:1",
                                "--store", str(tmp_path / "e.db"), "--listen", f"[::1]:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: httpx.get(f"http://[::1]:{port}/healthz", timeout=2).status_code == 200,
                   timeout=60, what="the engine on [::1]")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0 and "Traceback" not in output, output
    assert f"API on http://[::1]:{port}" in output, output


def test_the_background_api_server_listens_on_an_ipv6_address():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from slo.engine.api import BackgroundServer

    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("here"))])
    server = BackgroundServer(app, "::1", 0)
    try:
        assert server.url == f"http://[::1]:{server.port}"
        assert wait_until(lambda: httpx.get(server.url, timeout=2).text == "here", what="the server")
    finally:
        server.stop()


# --- the table and the errors ---------------------------------------------------------------


def test_every_command_is_a_module_named_after_it_and_in_the_table():
    for command in cli.COMMANDS:
        package, _, module = command.module.rpartition(".")
        assert module == f"{command.name}_cli" and package.partition(".")[0] in PACKAGES, command
    on_disk = {".".join(path.relative_to(ROOT).with_suffix("").parts)
               for package in PACKAGES for path in (ROOT / package).rglob("*_cli.py")}
    assert on_disk == {command.module for command in cli.COMMANDS}
    assert not [p for package in PACKAGES for p in (ROOT / package).rglob("cli.py") if p.parent.name != "mcp_slo"]


def test_the_entry_point_and_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"mcp-slo": "mcp_slo.cli:main"}
    assert "mcp_slo*" in project["tool"]["setuptools"]["packages"]["find"]["include"]


def test_every_command_has_help():
    for command in cli.COMMANDS:
        code, out, err = run_main(command.name, "--help")
        assert code == OK and out.startswith("usage: mcp-slo ") and not err, (command.name, err)


def test_no_command_is_bad_usage():
    code, out, err = run_main()
    assert code == USAGE and "proxy" in err and "validate" in err and not out
    assert run_main("nosuch")[0] == USAGE


@pytest.mark.integration
def test_python_dash_m_runs_the_command():
    done = subprocess.run([*MCP_SLO, "validate", "--config", EXAMPLE], capture_output=True, text=True, timeout=120)
    assert done.returncode == OK and done.stdout.startswith(f"{EXAMPLE}: valid"), done.stderr


def test_the_exit_codes():
    assert (OK, FAILED, USAGE, INCONCLUSIVE) == (0, 1, 2, 3)
    assert CommandError("x").exit_code == USAGE


def test_a_command_error_is_one_prefixed_message_and_its_code(monkeypatch, tmp_path):
    module = tmp_path / "failing_cli.py"
    module.write_text("from collector.command import CommandError\n"
                      "def add_arguments(parser):\n    parser.add_argument('--code', type=int)\n"
                      "def run(args):\n    raise CommandError('it went wrong', args.code)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMANDS", (cli.Command("failing", "failing_cli", "fails", None),))
    assert run_main("failing", "--code", "3") == (INCONCLUSIVE, "", "mcp-slo failing: it went wrong\n")


@pytest.mark.parametrize("command", ["rules", "grafana", "alertmanager"])
def test_the_generators_agree_on_exit_codes(tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / ("out.yml" if command == "alertmanager" else "dir")
    code, _, err = run_main(command, "--config", EXAMPLE, "--out", str(out))
    assert code == USAGE and err.startswith(f"mcp-slo {command}: cannot write {out}"), err
    bad = tmp_path / "bad.yaml"
    bad.write_text("services: [")
    code, _, err = run_main(command, "--config", str(bad), "--out", str(tmp_path / "nothing"))
    assert code == USAGE and err.startswith(f"mcp-slo {command}: ") and str(bad) in err, err
    assert not (tmp_path / "nothing").exists()


def test_the_demo_says_what_is_wrong_with_its_prefix(tmp_path):
    code, _, err = run_main("demo", "--scenario", str(tmp_path / "nosuch.yaml"), "--workdir", str(tmp_path / "wd"))
    assert code == USAGE and err.startswith("mcp-slo demo: ") and "nosuch.yaml" in err, err


# --- a missing extra ------------------------------------------------------------------------

# What an exporter-only install (`pip install mcp-slo`) does not have: the service's and the
# grafana extra's modules. pydantic stays: mcp, a dependency of the exporter, needs it.
NOT_IN_THE_EXPORTER = ("yaml", "dash", "dash_auth", "plotly", "pandas", "numpy", "scipy", "apscheduler",
                       "prometheus_api_client", "grafana_foundation_sdk")

SITECUSTOMIZE = f"""
import importlib.abc
import sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {NOT_IN_THE_EXPORTER!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
"""


@pytest.fixture
def exporter_only(tmp_path) -> dict[str, str]:
    """The environment of a process where only the exporter is installed."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{site}:{ROOT}"}


def _mcp_slo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MCP_SLO, *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


@pytest.mark.integration
@pytest.mark.parametrize("args", [("validate", "--config", EXAMPLE), ("demo", "--exit-after", "1")])
def test_a_missing_extra_is_the_install_hint_and_exit_2(exporter_only, args):
    done = _mcp_slo(exporter_only, *args)
    assert done.returncode == USAGE and not done.stdout, done.stderr
    assert done.stderr.startswith(f'mcp-slo {args[0]}: needs pip install "mcp-slo[service]"'), done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.integration
def test_the_proxy_needs_only_the_exporter(exporter_only):
    assert subprocess.run([sys.executable, "-c", "import yaml"], env=exporter_only, capture_output=True).returncode
    done = _mcp_slo(exporter_only, "proxy", "--help")
    assert done.returncode == OK and "--upstream" in done.stdout, done.stderr


@pytest.mark.integration
def test_every_other_command_says_which_extra_it_needs(exporter_only):
    code = textwrap.dedent("""
        import contextlib, io
        from mcp_slo import cli
        for command in cli.COMMANDS:
            if command.extra:
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    code = cli.main([command.name, "--help"])
                print(command.name, code, err.getvalue().strip(), sep="|")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=exporter_only, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    seen = {}
    for line in done.stdout.splitlines():
        name, code, err = line.split("|")
        seen[name] = code
        extra = "grafana" if name == "grafana" else "service"
        assert code == "2" and err.startswith(f'mcp-slo {name}: needs pip install "mcp-slo[{extra}]"'), line
    assert set(seen) == {c.name for c in cli.COMMANDS if c.extra}


# --- layers and loggers ---------------------------------------------------------------------


def _modules(*packages: str):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def test_the_canary_library_does_not_import_the_engine():
    for path, tree in _modules("slo/canary"):
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module] + \
                   [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.startswith("slo.engine")], path


def test_our_loggers_are_named_after_their_modules():
    """`logging.getLogger(__name__)`; a literal name only for someone else's logger
    (httpx, apscheduler), whose level a command sets."""
    for path, tree in _modules(*PACKAGES):
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "getLogger" and call.args:
                arg = call.args[0]
                if isinstance(arg, ast.Constant):
                    assert arg.value.partition(".")[0] not in (*PACKAGES, "mcp-slo"), \
                        f"{path}:{call.lineno}: getLogger({arg.value!r}); use __name__"
                else:
                    assert isinstance(arg, ast.Name) and arg.id in ("__name__", "noisy"), f"{path}:{call.lineno}"
