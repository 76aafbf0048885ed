"""The dashboard's alerts page: Prometheus's and Alertmanager's alerts merged, sorted and
filtered (alerts shaped as their APIs answer, with the labels and annotations of the
generated rules), the page's callbacks called as plain functions with a fake Metrics, the
app serving it, and the page built against the regression demo's real Prometheus and
Alertmanager; the episodes of the alerts that fired over a range, from a fake range answer
and from the demo's real ALERTS series."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime

import httpx
import pytest

from collector import durations
from dashboard import alerts_data
from dashboard.app import create_app
from dashboard.pages import alerts as page
from dashboard.prometheus import Metrics
from dashboard.source import SourceError
from slo import promql
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


# --- the past: episodes of firing over a range ---------------------------------------------------

DAY = 86400.0


def fired(labels: dict, *runs: tuple[float, float], missing: tuple[float, ...] = ()) -> tuple[dict, list]:
    """A `fired_alerts` series as Prometheus answers it at 1-minute steps: 1 at every step from
    each run's start to its end (seconds before AT), except the `missing` ones."""
    points = [(AT - t, 1.0) for a, b in runs for t in range(int(a), int(b) - 1, -60) if t not in missing]
    return {**labels, "alertstate": "firing"}, sorted(points)


WRITE_FILE = {**PAGE, "tool": "write_file"}


def past() -> list[tuple[dict, list]]:
    return [fired(PAGE, (36000, 35400), (18000, 17820), missing=(17940,)),  # a missed evaluation: one episode
            fired(WRITE_FILE, (35700, 35100)),  # overlaps the first page
            fired(TICKET_OLD, (DAY, 0)),  # all day, still firing
            fired(CANARY, (7200, 7200)),  # one evaluation
            ({**PENDING, "alertstate": "firing"}, [(AT - 600, float("nan"))])]  # no value: no episode


def test_the_query_and_its_step_find_every_firing_to_the_minute_within_prometheus_bounds():
    assert promql.fired_alerts(60) == 'max_over_time(ALERTS{alertstate="firing"}[1m])'
    assert promql.fired_alerts(300, 'fs"} or vector(1) #') == \
        'max_over_time(ALERTS{alertstate="firing",service="fs\\"} or vector(1) #"}[5m])'
    assert [alerts_data.episode_step(durations.parse(r)) for r in ("1h", "24h", "7d", "30d")] == [60, 60, 60, 300]
    assert 30 * DAY / alerts_data.episode_step(30 * DAY) < alerts_data.EPISODE_POINTS


def test_episodes_are_runs_of_firing_newest_first_with_their_times_to_the_step():
    rows = alerts_data.episodes(past(), 60.0, AT - DAY, AT)
    assert [(r["alertname"], r["slo"], r["start"], r["end"], r["duration_text"]) for r in rows] == [
        ("MCPCanaryRegression", "canary v2 vs v1", AT - 7200, AT - 7200, "under 1m"),
        ("MCPSLOErrorBudgetBurn", "availability", AT - 18000, AT - 17820, "3m"),
        ("MCPSLOErrorBudgetBurn", "availability › write_file", AT - 35700, AT - 35100, "10m"),
        ("MCPSLOErrorBudgetBurn", "availability", AT - 36000, AT - 35400, "10m"),
        ("MCPSLOErrorBudgetBurn", "latency", AT - DAY, None, "over 1d")]
    page_row, ticket = rows[1], rows[-1]
    assert (page_row["start_text"], page_row["end_text"], page_row["tier"]) == ("2027-01-15 03:00", "2027-01-15 03:03",
                                                                                  "page-fast / 30d")
    assert page_row["labels"] == PAGE and not page_row["before"]  # alertstate is not the alert's
    assert (ticket["start_text"], ticket["end_text"], ticket["before"]) == ("before 2027-01-14 08:00", "firing", True)
    assert ticket["duration"] == DAY


def test_a_gap_longer_than_five_minutes_starts_a_new_episode():
    six, five = fired(PAGE, (3600, 3540), (3180, 3000)), fired(TICKET, (3600, 3540), (3240, 3000))
    rows = alerts_data.episodes([six, five], 60.0, AT - DAY, AT)
    assert sorted((r["severity"], r["start"]) for r in rows) == [
        ("page", AT - 3600), ("page", AT - 3180), ("ticket", AT - 3600)]
    # at 30 days' 5-minute step, one missed point is no gap either
    coarse = [(PAGE, [(AT - 3000, 1.0), (AT - 2400, 1.0)])]
    assert len(alerts_data.episodes(coarse, 300.0, AT - 30 * DAY, AT)) == 1


def test_an_alert_firing_at_the_last_evaluation_is_still_firing():
    # the range's points end a step after now: the last evaluation, a few seconds ago, is in it
    rows = alerts_data.episodes([(PAGE, [(AT - 120, 1.0), (AT - 60, 1.0), (AT + 60, 1.0)])], 60.0, AT - DAY, AT + 20)
    assert rows[0]["end"] is None and rows[0]["duration"] == 140
    resolved = alerts_data.episodes([(PAGE, [(AT - 120, 1.0)])], 60.0, AT - DAY, AT + 20)
    assert resolved[0]["end"] == AT - 120 and resolved[0]["end_text"] == "2027-01-15 07:58"


def test_read_episodes_asks_one_range_query_past_the_end_and_says_why_it_cannot():
    metrics = FakeMetrics(fired=past())
    rows = alerts_data.read_episodes(metrics, AT - DAY, AT, "filesystem")
    assert metrics.ranges == [(promql.fired_alerts(60, "filesystem"), AT - DAY, AT + 60, 60)]
    assert len(rows) == 5
    down = SourceError("unreachable", "Prometheus at http://prom.test:9090 is unreachable")
    assert alerts_data.read_episodes(FakeMetrics(fired=down), AT - DAY, AT) is down


def test_the_spans_of_each_severity_are_merged_worst_on_top():
    rows = alerts_data.episodes(past(), 60.0, AT - DAY, AT)
    assert alerts_data.spans(rows, AT) == [
        (AT - 7200, AT - 7200, "release"), (AT - DAY, AT, "ticket"),
        (AT - 36000, AT - 35100, "page"), (AT - 18000, AT - 17820, "page")]  # the write_file page merged in


def test_the_timeline_has_a_row_per_alert_worst_first_and_a_bar_per_episode():
    rows = alerts_data.episodes(past(), 60.0, AT - DAY, AT)
    figure = alerts_data.timeline_figure(rows, AT - DAY, AT)
    page_trace, ticket, release = figure["data"]
    assert [t["name"] for t in figure["data"]] == ["page", "ticket", "release"]
    assert page_trace["x"] == [(AT - 18000) * 1000, (AT - 17820) * 1000, None, (AT - 35700) * 1000,
                               (AT - 35100) * 1000, None, (AT - 36000) * 1000, (AT - 35400) * 1000, None]
    assert page_trace["y"][:2] == ["filesystem · availability · page-fast / 30d"] * 2 and page_trace["y"][2] is None
    assert ticket["x"] == [(AT - DAY) * 1000, AT * 1000, None]  # still firing: to the range's end
    assert release["x"] == [(AT - 7200) * 1000, (AT - 7200) * 1000, None]  # one point: a marker shows it
    assert figure["layout"]["yaxis"]["categoryarray"] == [
        "filesystem · availability · page-fast / 30d", "filesystem · availability › write_file · page-fast / 30d",
        "analytics · latency · ticket-slow / 30d", "analytics · canary v2 vs v1 · MCPCanaryRegression"]
    assert figure["layout"]["xaxis"]["range"] == [(AT - DAY) * 1000, AT * 1000]
    assert "(3m)" in page_trace["text"][0] and "firing" in ticket["text"][0]
    few = alerts_data.timeline_figure(rows, AT - DAY, AT, most=2)  # the alerts that fired last
    assert few["layout"]["yaxis"]["categoryarray"] == ["analytics · latency · ticket-slow / 30d",
                                                       "analytics · canary v2 vs v1 · MCPCanaryRegression"]
    assert few["layout"]["title"]["text"].endswith("the 2 that fired last, of 4")
    hostile = {**PAGE, "service": "<a href=https://evil.example>fs</a>"}
    label = alerts_data.timeline_figure(alerts_data.episodes([fired(hostile, (60, 0))], 60.0, AT - DAY, AT),
                                        AT - DAY, AT)["layout"]["yaxis"]["categoryarray"][0]
    assert label.startswith("&lt;a href=https://evil.example&gt;fs&lt;/a&gt;")


# --- the page, with a fake Metrics ------------------------------------------------------------------


class FakeMetrics:
    def __init__(self, alerts=(), alertmanager=None, fired=()):
        self._alerts, self._fired = alerts, fired
        self._am = alertmanager if alertmanager is not None else SourceError(
            "unconfigured", "no Alertmanager configured (--alertmanager)")
        self.ranges: list[tuple] = []  # (expr, start, end, step) asked

    def range(self, expr, start, end, max_points=None, step=None):
        self.ranges.append((expr, start, end, step))
        return self._fired if isinstance(self._fired, SourceError) else list(self._fired)

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
    assert "pending alerts and the alerts that fired before are missing" in texts(body)
    assert {r["state"] for r in alerts_data.merge([], alertmanager_alerts(), AT)} == {"firing"}
    assert len(table_rows(body)) == 4
    body, _ = page.render(FakeMetrics(SourceError("unconfigured", "no Prometheus configured (--prometheus)")), now=AT)
    assert "No Prometheus configured" in texts(body)


def past_rows(body: list) -> list:
    tables = [b for b in body if getattr(b, "className", None) == "overview episodes"]
    return tables[0].children[1].children if tables else []


def test_the_page_lists_what_fired_in_the_range_newest_first_with_a_timeline():
    metrics = FakeMetrics(prometheus_alerts(), alertmanager_alerts(), fired=past())
    body, _ = page.render(metrics, (), "?range=24h", now=AT, range_="24h")
    assert metrics.ranges == [(promql.fired_alerts(60), AT - DAY, AT + 60, 60)]
    shown = texts(body)
    assert "Firing and pending now" in shown and "Fired in the last 24h" in shown
    assert "5 episodes, newest first (times to the nearest 1m)" in shown
    rows = [texts(r) for r in past_rows(body)]
    assert len(rows) == 5 and "MCPCanaryRegression" in rows[0] and "under 1m" in rows[0]
    assert "2027-01-15 03:00" in rows[1] and "2027-01-15 03:03" in rows[1] and '"children": "3m"' in rows[1]
    assert '"href": "/services/filesystem?range=24h"' in rows[1]
    assert "before 2027-01-14 08:00" in rows[4] and '"children": "firing"' in rows[4] and '"className": "firing"' in rows[4]
    timeline = next(b for b in body if getattr(b, "id", None) == "alerts-timeline")
    assert [t["name"] for t in timeline.figure["data"]] == ["page", "ticket", "release"]

    body, _ = page.render(FakeMetrics(prometheus_alerts(), fired=past()), ("page",), now=AT, range_="7d")
    assert "Fired in the last 7d" in texts(body) and len(past_rows(body)) == 3  # the severity filter applies
    assert all('"children": "page"' in texts(r) for r in past_rows(body))


def test_the_past_says_when_nothing_fired_or_it_cannot_be_read():
    body, summary = page.render(FakeMetrics([], []), now=AT, range_="30d")
    assert "No alerts" in texts(body) and "No alert fired in the last 30d" in texts(body) and summary is None
    body, _ = page.render(FakeMetrics([], [], fired=past()), now=AT)  # nothing now, something before
    assert "No alerts" in texts(body) and len(past_rows(body)) == 5 and "Fired in the last 24h" in texts(body)
    body, _ = page.render(FakeMetrics(prometheus_alerts(), fired=past()), ("release",), now=AT)
    assert "No release alert fired" not in texts(body) and len(past_rows(body)) == 1
    body, _ = page.render(FakeMetrics(prometheus_alerts(), fired=[]), ("release",), now=AT)
    assert "No release alert fired in the last 24h" in texts(body)
    broken = SourceError("prometheus", "query failed: too many samples")
    body, _ = page.render(FakeMetrics(prometheus_alerts(), fired=broken), now=AT)
    assert "The alerts that fired before cannot be read: query failed: too many samples" in texts(body)
    assert len(table_rows(body)) == 5  # what fires now is still listed
    down = SourceError("unreachable", "Prometheus at http://127.0.0.1:9090 is unreachable (ConnectError)")
    metrics = FakeMetrics(down, alertmanager_alerts())
    body, _ = page.render(metrics, now=AT)
    assert metrics.ranges == [] and "Fired in the last" not in texts(body)  # not asked again: it is down


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


@pytest.mark.integration
def test_the_episodes_are_the_runs_of_the_alerts_samples_prometheus_holds(regression_stack):
    """Over the regression demo's last 7 days (its history's ALERTS and the live rules'), every
    run of firing samples is one episode, to the minute."""
    stack = regression_stack
    now = time.time()
    span = 7 * DAY
    ours = alerts_data.read_episodes(Metrics(stack.prometheus_url, ttl=0), now - span, now)
    raw = httpx.get(f"{stack.prometheus_url}/api/v1/query", timeout=10, params={
        "query": f'ALERTS{{alertstate="firing"}}[{int(span)}s]', "time": now}).json()["data"]["result"]
    runs = []  # (labels, first sample, last sample) of each run, from the raw samples
    for series in raw:
        labels = {k: v for k, v in series["metric"].items() if k not in ("__name__", "alertstate")}
        times = [float(t) for t, _ in series["values"]]
        first = times[0]
        for before, after in zip(times, times[1:] + [math.inf]):
            if after - before > alerts_data.JOIN_GAP:
                runs.append((labels, first, before))
                first = after
    # those the page can be sure of: begun in the range, not just ended (alerts change meanwhile)
    settled = [r for r in runs if r[1] > now - span + 600 and not now - 600 < r[2] < now - 120]
    assert any(r[2] < now - 3 * 3600 for r in settled), "no past incident in the last 7 days"
    for labels, first, last in settled:
        match = [e for e in ours if e["labels"] == labels and abs(e["start"] - first) <= 60]
        assert len(match) == 1, (labels, first, last, [(e["labels"], e["start"]) for e in ours])
        if last >= now - 120:  # fired at the latest evaluation
            assert match[0]["end"] is None
        else:
            assert match[0]["end"] == pytest.approx(last, abs=60)
    assert len(ours) >= len(settled)
