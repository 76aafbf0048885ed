"""The dashboard's alerts page: Prometheus's and Alertmanager's alerts merged, sorted and
filtered (alerts shaped as their APIs answer, with the labels and annotations of the
generated rules), the page's callbacks called as plain functions with a fake Metrics, the
app serving it, and the page built against the regression demo's real Prometheus and
Alertmanager."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest

from dashboard import alerts_data
from dashboard.app import create_app
from dashboard.pages import alerts as page
from dashboard.prometheus import Metrics
from dashboard.source import SourceError
from slo.engine import answers
from tests.support import wait_until
from tests.test_dashboard_overview import ROUTER, FakeSource, dispatch, texts

AT = 1_800_000_000.0  # 2027-01-15T08:00:00Z
TEAM = {"team": "mcp-platform"}  # the spec's alerting.labels, on every rule


def burn(service: str, slo: str, severity: str, speed: str) -> dict[str, str]:
    return {"alertname": "MCPSLOErrorBudgetBurn", "service": service, "slo": slo, "severity": severity,
            "tier": f"{severity}-{speed}", "window": "30d", **TEAM}


def canary_labels(service: str) -> dict[str, str]:
    return {"alertname": "MCPCanaryRegression", "service": service, "baseline": "v1", "canary": "v2",
            "severity": "release", **TEAM}


def annotations(labels: dict) -> dict[str, str]:
    """As the generated rules write them."""
    topic, service = labels.get("slo", "canary"), labels.get("service", "")
    return {"summary": f"{service}: {topic} ({labels['severity']})",
            "description": f"{labels['alertname']} for {service}",
            "runbook_url": f"https://runbooks.example.com/mcp-slo/{topic}#{service}",
            "dashboard_url": f"http://127.0.0.1:8050/services/{service}"}


def prom(labels: dict, state: str, minutes_ago: float) -> dict:
    """An alert as Prometheus's GET /api/v1/alerts lists it (nanosecond times, as Go writes them)."""
    return {"labels": labels, "annotations": annotations(labels), "state": state,
            "activeAt": answers.rfc3339(AT - 60 * minutes_ago).replace("Z", ".123456789Z"), "value": "2.1e+01"}


def am(labels: dict, receivers: list[str], minutes_ago: float, inhibited_by=(), silenced_by=()) -> dict:
    """An alert as Alertmanager's GET /api/v2/alerts lists it."""
    state = "suppressed" if inhibited_by or silenced_by else "active"
    return {"labels": labels, "annotations": annotations(labels), "startsAt": answers.rfc3339(AT - 60 * minutes_ago),
            "endsAt": answers.rfc3339(AT + 240), "fingerprint": "f" * 16, "receivers": [{"name": r} for r in receivers],
            "status": {"state": state, "silencedBy": list(silenced_by), "inhibitedBy": list(inhibited_by)},
            "updatedAt": answers.rfc3339(AT), "generatorURL": "http://127.0.0.1:9090/graph"}


PAGE = burn("filesystem", "availability", "page", "fast")
TICKET = burn("filesystem", "availability", "ticket", "fast")  # inhibited by the page of the same SLO
TICKET_OLD = burn("analytics", "latency", "ticket", "slow")
PENDING = burn("analytics", "availability", "page", "slow")
CANARY = canary_labels("analytics")


def prometheus_alerts() -> list[dict]:
    return [prom(TICKET, "firing", 50), prom(CANARY, "firing", 20), prom(PENDING, "pending", 300),
            prom(PAGE, "firing", 12), prom(TICKET_OLD, "firing", 200)]


def alertmanager_alerts() -> list[dict]:
    # the page arrives with Prometheus's external labels, which its own API does not show
    return [am({**PAGE, "cluster": "eu-1"}, ["page"], 12), am(TICKET, ["ticket"], 50, inhibited_by=["a" * 16]),
            am(TICKET_OLD, ["ticket"], 200, silenced_by=["s1"]), am(CANARY, ["release"], 20)]


def keyed(rows: list[dict]) -> list[tuple]:
    return [(r["severity"], r["service"], r["state"], r["age"]) for r in rows]


# --- merging, sorting, filtering ------------------------------------------------------------------


def test_alerts_are_merged_and_sorted_page_ticket_release_firing_pending_oldest_first():
    rows = alerts_data.merge(prometheus_alerts(), alertmanager_alerts(), AT)
    assert keyed(rows) == [("page", "filesystem", "firing", "12m"), ("page", "analytics", "pending", "5h"),
                           ("ticket", "analytics", "firing", "3h 20m"), ("ticket", "filesystem", "firing", "50m"),
                           ("release", "analytics", "firing", "20m")]
    page_row, pending, silenced, inhibited, canary = rows
    assert page_row["receivers"] == ["page"] and page_row["alertmanager"]  # matched despite the external label
    assert not pending["alertmanager"] and pending["receivers"] == []  # pending: never sent to Alertmanager
    assert silenced["silenced"] and not silenced["inhibited"]
    assert inhibited["inhibited"] and inhibited["receivers"] == ["ticket"]
    assert canary["receivers"] == ["release"] and canary["slo"] == "canary v2 vs v1" and canary["tier"] == ""
    assert page_row["tier"] == "page-fast / 30d" and page_row["slo"] == "availability"
    assert page_row["since_text"] == answers.rfc3339(AT - 720.0)
    assert page_row["runbook_url"] == "https://runbooks.example.com/mcp-slo/availability#filesystem"
    assert page_row["summary"] == "filesystem: availability (page)" and page_row["other_labels"] == TEAM


def test_an_alert_only_alertmanager_holds_is_shown_firing():
    other = burn("billing", "availability", "page", "fast")
    rows = alerts_data.merge([], [am(other, ["page"], 30)], AT)
    assert keyed(rows) == [("page", "billing", "firing", "30m")]
    assert rows[0]["alertmanager"] and not rows[0]["prometheus"]


def test_unknown_severities_come_last_and_inactive_entries_are_dropped():
    odd = {"alertname": "Watchdog", "severity": "none"}
    rows = alerts_data.merge([prom(odd, "firing", 999), prom(PAGE, "inactive", 1), prom(TICKET, "pending", 5)], [], AT)
    assert [(r["alertname"], r["state"]) for r in rows] == [("MCPSLOErrorBudgetBurn", "pending"), ("Watchdog", "firing")]


def test_the_severity_filter_reads_the_query_and_keeps_those_severities():
    assert alerts_data.severities_from_query("ticket,page") == ("page", "ticket")  # worst first
    assert alerts_data.severities_from_query(["release", "page"]) == ("page", "release")
    assert alerts_data.severities_from_query("bogus") == () == alerts_data.severities_from_query(None)
    rows = alerts_data.merge(prometheus_alerts(), [], AT)
    assert {r["severity"] for r in alerts_data.filter_rows(rows, ("ticket",))} == {"ticket"}
    assert alerts_data.filter_rows(rows, ()) == rows
    assert alerts_data.counts(rows) == {"page": {"firing": 1, "pending": 1}, "ticket": {"firing": 2, "pending": 0},
                                        "release": {"firing": 1, "pending": 0}}


def test_only_http_runbook_links_are_links():
    assert alerts_data.safe_link("https://runbooks.example.com/x") == "https://runbooks.example.com/x"
    assert alerts_data.safe_link("javascript:alert(1)") is None  # annotations are free text
    assert alerts_data.safe_link("") is None and alerts_data.safe_link(None) is None


# --- the page, with a fake Metrics ------------------------------------------------------------------


class FakeMetrics:
    def __init__(self, alerts=(), alertmanager=None):
        self._alerts = alerts
        self._am = alertmanager if alertmanager is not None else SourceError(
            "unconfigured", "no Alertmanager configured (--alertmanager)")

    def alerts(self):
        return self._alerts if isinstance(self._alerts, SourceError) else list(self._alerts)

    def alertmanager_alerts(self):
        return self._am if isinstance(self._am, SourceError) else list(self._am)


def table_rows(body: list) -> list:
    tables = [b for b in body if getattr(b, "className", None) == "overview alerts"]
    return tables[0].children[1].children if tables else []


def test_the_page_lists_every_alert_with_its_runbook_and_receivers():
    body, summary = page.render(FakeMetrics(prometheus_alerts(), alertmanager_alerts()), (), "?range=7d", now=AT)
    rows = table_rows(body)
    assert len(rows) == 5
    first = texts(rows[0])
    assert "page-fast / 30d" in first and "12m" in first and '"children": "page"' in first
    assert '"href": "https://runbooks.example.com/mcp-slo/availability#filesystem"' in first
    assert '"href": "/services/filesystem?range=7d"' in first
    assert "inhibited" in texts(rows[3]) and "silenced" in texts(rows[2])
    assert "5 alerts" in texts(summary) and "page: 1 firing, 1 pending" in texts(summary)


def test_the_page_filters_by_severity():
    body, summary = page.render(FakeMetrics(prometheus_alerts(), alertmanager_alerts()), ("release",), now=AT)
    assert len(table_rows(body)) == 1 and "1 shown" in texts(summary)
    none = FakeMetrics([prom(TICKET, "firing", 5)])
    body, _ = page.render(none, ("page",), now=AT)
    assert table_rows(body) == [] and "No page alert" in texts(body)


def test_no_alerts_is_said_plainly():
    body, summary = page.render(FakeMetrics([], []), now=AT)
    assert "No alerts" in texts(body) and "#2e7d32" in texts(body) and summary is None


def test_without_alertmanager_the_page_still_shows_prometheus_alerts():
    body, _ = page.render(FakeMetrics(prometheus_alerts()), now=AT)
    assert "Alertmanager is not configured" in texts(body) and len(table_rows(body)) == 5
    down = SourceError("unreachable", "Alertmanager at http://127.0.0.1:9093 is unreachable (ConnectError)")
    body, _ = page.render(FakeMetrics(prometheus_alerts(), down), now=AT)
    assert "Alertmanager cannot be read" in texts(body) and len(table_rows(body)) == 5


def test_an_unreachable_prometheus_is_said_and_alertmanager_still_shown():
    down = SourceError("unreachable", "Prometheus at http://127.0.0.1:9090 is unreachable (ConnectError)")
    body, _ = page.render(FakeMetrics(down), now=AT)
    assert "Prometheus is unreachable" in texts(body) and "http://127.0.0.1:9090" in texts(body)
    assert table_rows(body) == []
    body, _ = page.render(FakeMetrics(down, alertmanager_alerts()), now=AT)
    assert "pending alerts are missing" in texts(body)
    assert {r["state"] for r in alerts_data.merge([], alertmanager_alerts(), AT)} == {"firing"}
    assert len(table_rows(body)) == 4
    body, _ = page.render(FakeMetrics(SourceError("unconfigured", "no Prometheus configured (--prometheus)")), now=AT)
    assert "No Prometheus configured" in texts(body)


def test_the_app_keeps_the_severity_filter_in_the_url():
    app = create_app(FakeSource([]), metrics=FakeMetrics(prometheus_alerts(), alertmanager_alerts()))
    client = app.server.test_client()
    assert client.get("/alerts?severity=page").status_code == 200
    routed = dispatch(client, app, ROUTER,
                      {"_pages_location.pathname": "/alerts", "_pages_location.search": "?severity=page,release"},
                      ["_pages_location.pathname"])
    assert '"value": ["page", "release"]' in json.dumps(routed["_pages_content"]["children"])
    out = dispatch(client, app, "url.search@" + _duplicate_suffix(app, "url.search", "alerts-severity"),
                   {"alerts-severity.value": ["ticket"], "url.search": "?range=7d"}, ["alerts-severity.value"])
    assert out["url"]["search"] == "?range=7d&severity=ticket"


def _duplicate_suffix(app, output: str, input_id: str) -> str:
    """The hash Dash gives an allow_duplicate output of the callback fed by `input_id`."""
    for key, cb in app.callback_map.items():
        if key.startswith(output + "@") and any(i["id"] == input_id for i in cb["inputs"]):
            return key.split("@", 1)[1]
    raise AssertionError(f"no callback writes {output} from {input_id}")


# --- against the real stack ---------------------------------------------------------------------


@pytest.mark.integration
def test_the_page_lists_the_regression_demos_alerts_as_prometheus_and_alertmanager_hold_them(regression_stack):
    stack = regression_stack
    metrics = Metrics(stack.prometheus_url, stack.alertmanager_url, ttl=0)

    def label_key(alert: dict) -> str:
        return json.dumps(alert["labels"], sort_keys=True)

    def raw():
        prometheus = httpx.get(f"{stack.prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return prometheus, httpx.get(f"{stack.alertmanager_url}/api/v2/alerts", timeout=5).json()

    def canary_alert_in_both():
        prometheus, alertmanager = raw()
        sent = {label_key(a) for a in alertmanager}
        return [a for a in prometheus if a["labels"]["alertname"] == "MCPCanaryRegression"
                and a["state"] == "firing" and label_key(a) in sent]

    wait_until(canary_alert_in_both, timeout=300, interval=1, what="the canary alert in Prometheus and Alertmanager")

    def page_and_apis():
        # alerts go from pending to firing meanwhile: read the APIs, the page, the APIs again,
        # and keep a read during which nothing changed
        before = raw()
        body, summary = page.render(metrics)
        after = raw()
        return (body, summary, after) if _states(before) == _states(after) else None

    body, summary, (prometheus, alertmanager) = wait_until(page_and_apis, timeout=60, interval=0.5,
                                                           what="a page read while the alerts held still")
    # every alert of either, in the documented order: page, ticket, release; firing, pending; oldest first
    alerts = {label_key(a): {**a, "state": "firing", "since": a["startsAt"]} for a in alertmanager}
    alerts.update({label_key(a): {**a, "since": a["activeAt"]} for a in prometheus})
    order = sorted(alerts.values(), key=lambda a: (
        alerts_data.SEVERITIES.index(a["labels"]["severity"]), ["firing", "pending"].index(a["state"]),
        datetime.fromisoformat(a["since"]), a["labels"]["alertname"], sorted(a["labels"].items())))
    shown = [texts(r) for r in table_rows(body)]
    assert len(shown) == len(order) and f"{len(order):,} alerts" in texts(summary)
    receivers = {label_key(a): ", ".join(r["name"] for r in a["receivers"]) for a in alertmanager}
    for alert, text in zip(order, shown):
        labels = alert["labels"]
        slo = labels["slo"] + (f" › {labels['tool']}" if labels.get("tool") else "") if "slo" in labels \
            else f"canary {labels['canary']} vs {labels['baseline']}"
        for value in (labels["severity"], labels["alertname"], labels["service"], alert["state"], slo):
            assert f'"children": {json.dumps(value)}' in text, (value, text)
        assert f'"href": "{alert["annotations"]["runbook_url"]}"' in text
        assert f'"children": {json.dumps(receivers.get(label_key(alert), "—"))}' in text  # texts() escapes "—"
    assert any("MCPCanaryRegression" in t and '"children": "release"' in t for t in shown)  # the release receiver

    severities = [a["labels"]["severity"] for a in order]
    filtered, _ = page.render(metrics, (severities[0],))
    kept = [texts(r) for r in table_rows(filtered)]
    assert kept and all(f'"children": "{severities[0]}"' in t for t in kept)


def _states(answers) -> tuple:
    prometheus, alertmanager = answers
    return (sorted((json.dumps(a["labels"], sort_keys=True), a["state"]) for a in prometheus),
            sorted(json.dumps(a["labels"], sort_keys=True) for a in alertmanager))
