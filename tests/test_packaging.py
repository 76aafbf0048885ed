"""The exporter stays light: importing it (and the proxy command) loads none of the
SLO service's dependencies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HEAVY = ("pandas", "dash", "plotly", "apscheduler", "prometheus_api_client", "numpy", "scipy")


@pytest.mark.integration
def test_collector_imports_none_of_the_service_dependencies():
    code = (
        "import sys, collector, collector.proxy_cli, collector.mcpserver, collector.exposition\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.integration
def test_the_proxy_command_starts_without_them():
    code = (
        "import sys\nfrom mcp_slo.cli import main\n"
        "try:\n    main(['proxy', '--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


@pytest.mark.integration
def test_the_wheel_ships_the_demo_data_with_the_demo(tmp_path):
    """The generated rules and Alertmanager configuration are the demo's data: they ship in
    `demo`, and `alerts` (the generators) ships code only."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(root)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("mcp_slo-*.whl")
    shipped = zipfile.ZipFile(wheel).namelist()
    assert "demo/data/alertmanager.yml" in shipped and "demo/data/rules/mcp-slo.yml" in shipped
    assert "demo/scenarios/regression.yaml" in shipped
    assert [name for name in shipped if name.startswith("alerts/") and not name.endswith(".py")] == []
