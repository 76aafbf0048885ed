"""Grafana dashboards as code: `mcp-slo grafana` (grafana.grafana_cli) writes the dashboards that
grafana.generate builds from the SLO spec, and the provisioning files that load them. The
generated files for examples/slo.yaml live beside this package (dashboards/, provisioning/)."""
