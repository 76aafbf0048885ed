"""The audit trail: one record per MCP client request (who called which tool, when, with what
outcome), tamper-evident, written without slowing the request.

The pieces, in the order a record meets them:
- `redact`: what a record may keep of the request: parameters by mode ("names", "redacted",
  "full") and tool classification, free text (error messages) and headers with secrets and
  personal data masked;
- `identity`: who made it, from the bearer token's claims (verified with a JWKS when
  configured; PyJWT, the "audit" extra, is imported only then);
- `writer`: `AuditWriter.submit(record)` queues the record (never blocking in "drop" mode); one
  thread seals it (`chain`) and writes it in batches to the `sinks`;
- `chain`: `seq`, `prev` and `hash` (SHA-256, or HMAC-SHA256 with a key) link each record to
  the one before; `verify` names the first record removed, changed or reordered;
- `sinks`: a JSON Lines file with rotation and retention that resumes the chain after a
  restart, or stdout;
- `config`: `AuditConfig`, the options read from a mapping and checked;
- `audit_cli`: `mcp-slo audit verify` and `mcp-slo audit query`.

A record's fields (the caller fills them; the writer adds `seq`, `prev` and `hash`): `time`
(RFC 3339 UTC with milliseconds and Z, `config.format_time`), `request_id`, `jsonrpc_id`,
`session_id`, `service`, `version`, `method`, `tool`, `status` (success, error, timeout,
cancelled), `duration_seconds`, `identity` (`identity.from_bearer`), `client` ({"name",
"version"}), `params` (`AuditConfig.record_params`), `error` ({"code", "message"} with the
message through `redact.redact_text`, or null), `request_bytes`, `response_bytes`, `trace_id`.

    config = AuditConfig.from_mapping({"path": "audit/mcp.jsonl", "retention": "90d"})
    writer = AuditWriter.from_config(config)
    writer.submit(record)  # from any thread or event loop
    writer.close()         # at shutdown: drains the queue
"""

from __future__ import annotations

FIELDS = (
    "time", "request_id", "jsonrpc_id", "session_id", "service", "version", "method", "tool", "status",
    "duration_seconds", "identity", "client", "params", "error", "request_bytes", "response_bytes", "trace_id",
)
SEALED_FIELDS = ("seq", "prev", "hash")
