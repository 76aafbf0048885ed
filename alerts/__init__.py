"""Prometheus rules and Alertmanager configuration generated from an SLO spec: `rules`
(recording rules per window, multiwindow burn-rate alerts), `rules_tests` (promtool suites
that prove the alerts' timing), `alertmanager` (routes, grouping, inhibition), and the
`mcp-slo rules` and `mcp-slo alertmanager` commands."""
