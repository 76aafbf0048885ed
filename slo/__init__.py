"""mcp-slo: SLO specs, PromQL, the engine and the command line."""
