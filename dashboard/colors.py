"""The colours of the values several views show, one table per kind of value: the pages use
them for chips and text, the figures for markers and lines. Plain strings, no Dash.

A colour only one view uses stays beside it (the burn-rate cell backgrounds on the
overview, the request statuses in dashboard.service_data's charts).
"""

from __future__ import annotations

# an SLO's status (slo.engine.answers.SEVERITY)
STATUS_COLORS = {"critical": "#c62828", "exhausted": "#6a1b9a", "warning": "#ef6c00", "ok": "#2e7d32",
                 "no_data": "#9e9e9e"}
# a canary's verdict (slo.canary.judge)
VERDICT_COLORS = {"promote": "#2e7d32", "rollback": "#c62828", "inconclusive": "#757575"}
# an alert's severity label (alerts.rules)
SEVERITY_COLORS = {"page": "#c62828", "ticket": "#ef6c00", "release": "#1565c0"}
