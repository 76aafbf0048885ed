"""The `mcp-slo` command (mcp_slo.cli): above every other package, it only dispatches."""
