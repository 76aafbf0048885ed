"""The dashboard's Prometheus and Alertmanager reads: steps that keep charts small, shared
answers, and clear errors instead of exceptions."""

from __future__ import annotations

import pytest

from dashboard.prometheus import MAX_POINTS, Metrics, step_for
from dashboard.source import SourceError


@pytest.mark.parametrize("span, step", [(3600, 15), (6 * 3600, 30), (86400, 120), (7 * 86400, 900),
                                        (30 * 86400, 3600), (400 * 86400, 43200)])
def test_step_keeps_charts_at_1000_points_or_fewer(span, step):
    assert step_for(span) == step
    assert span / step_for(span) + 1 <= MAX_POINTS


def test_unconfigured_and_unreachable_give_errors_not_exceptions():
    nothing = Metrics(None)
    for answer in (nothing.range("up", 0, 3600), nothing.instant("up"), nothing.alerts(),
                   nothing.alertmanager_alerts()):
        assert isinstance(answer, SourceError) and answer.kind == "unconfigured"
    down = Metrics("http://user:secret@127.0.0.1:1", "http://127.0.0.1:1", timeout=1.0)
    for answer in (down.range("up", 0, 3600), down.instant("up"), down.alerts(), down.alertmanager_alerts()):
        assert isinstance(answer, SourceError) and answer.kind == "unreachable", answer
        assert "secret" not in answer.message
    assert down.queries == 2
    down.instant("up")  # shared for a few seconds: not asked again
    assert down.queries == 2
