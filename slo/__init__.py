"""mcp-slo's SLO library: the spec and its importers, PromQL, the plan of every objective,
evaluation and the canary judge. The engine service that runs them on a schedule is
`slo.engine`; the library imports nothing of it."""
