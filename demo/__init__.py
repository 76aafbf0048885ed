"""The local demo stack behind `mcp-slo demo`: demo MCP services with a canary under load
(`scenario`, `services`, `load`), 30 days of history (`history`), a managed Prometheus and
Alertmanager (`prometheus`, `alertmanager`, `processes`), the SLO engine and the dashboard,
all started and stopped together by `stack`. `data/` holds the rules and Alertmanager
configuration generated from examples/slo.yaml (`make rules`)."""
