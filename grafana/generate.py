"""Grafana dashboards and provisioning files from the SLO spec.

    files = generate(spec, source="slo.yaml")   # relative path -> text

Four dashboards (MCP operations, SLO overview, SLO detail, canary comparison) built with
grafana-foundation-sdk, every query from `slo.promql`; written with sorted keys and no
timestamps, so the same spec always gives the same files (the committed ones are compared
with the generator's output by the tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana import canary, frame, operations, provision, slos
from slo.plan import plan
from slo.spec import Spec

DASHBOARDS_DIR = "dashboards"
DATASOURCES_FILE = "provisioning/datasources/mcp-slo.yaml"
PROVIDERS_FILE = "provisioning/dashboards/mcp-slo.yaml"


@dataclass(frozen=True)
class Options:
    dash_url: str = frame.DEFAULT_DASH_URL  # the Dash app, for links
    datasource_url: str = provision.DEFAULT_DATASOURCE_URL  # the provisioned Prometheus
    dashboards_path: str = provision.DEFAULT_DASHBOARDS_PATH  # where Grafana finds the JSON


def dashboards(spec: Spec, *, source: str, dash_url: str = frame.DEFAULT_DASH_URL) -> dict[str, dict]:
    """uid -> dashboard JSON (as a dict)."""
    p = plan(spec)
    dash_url = dash_url.rstrip("/")
    built = [operations.build(source=source, dash_url=dash_url, schema=p.schema),
             slos.overview(p, source=source, dash_url=dash_url),
             slos.detail(p, source=source, dash_url=dash_url),
             canary.build(source=source, dash_url=dash_url, schema=p.schema)]
    return {board["uid"]: board for board in map(_json, built)}


def _json(builder: dashboard.Dashboard) -> dict:
    model = builder.build()
    for i, panel in enumerate(model.panels or [], start=1):  # ids unique within the dashboard, in order
        panel.id_val = i
    return json.loads(json.dumps(model, cls=JSONEncoder))


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(spec: Spec, *, source: str, options: Options = Options()) -> dict[str, str]:
    """Relative path -> file content: dashboards/<uid>.json and the provisioning files."""
    out = {f"{DASHBOARDS_DIR}/{uid}.json": render(d)
           for uid, d in dashboards(spec, source=source, dash_url=options.dash_url).items()}
    out[DATASOURCES_FILE] = provision.render(provision.datasource(options.datasource_url), source=source)
    out[PROVIDERS_FILE] = provision.render(provision.dashboards(options.dashboards_path), source=source)
    return out
