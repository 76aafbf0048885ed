"""The exporter stays light: importing it (and the proxy command) loads none of the
SLO service's dependencies."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "dash", "plotly", "apscheduler", "prometheus_api_client", "numpy", "scipy")


def test_collector_imports_none_of_the_service_dependencies():
    code = (
        "import sys, collector, collector.proxy.cli, collector.mcpserver, collector.exposition\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_proxy_command_starts_without_them():
    code = (
        "import sys\nfrom slo.cli import main\n"
        "try:\n    main(['proxy', '--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")
