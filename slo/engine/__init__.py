"""The SLO engine service: on a schedule (`scheduler`), it reads Prometheus through
`backend`, evaluates every SLO and canary with the library in `slo`, keeps each tick in
`store` (SQLite) and serves it through `api` (HTTP, JSON shaped by `answers`) and `metrics`.
`engine_cli`, `canary_cli` and `maintenance_cli` are the `mcp-slo engine`, `canary` and
`maintenance` commands. Nothing is imported here, so that reading the store
or the answers' shapes loads neither the scheduler nor the HTTP server."""
