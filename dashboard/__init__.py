"""The Dash app over the engine's results: overview, service, canaries and alerts pages
for SREs, on-call and release managers (`mcp-slo dashboard`, `mcp-slo serve`)."""
