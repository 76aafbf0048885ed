"""The metrics contract: names, labels and closed label sets.

Everything that reads mcp-slo metrics (rules, engine, dashboards) imports these
names from here, so there is one place that spells them.
"""

OPERATIONS_TOTAL = "mcp_operations_total"
OPERATION_DURATION = "mcp_operation_duration_seconds"
OPERATIONS_ACTIVE = "mcp_operations_active"

# prometheus-client appends `_total` to counters itself, so the family is declared
# without it.
OPERATIONS_FAMILY = "mcp_operations"

OPERATION_LABELS = ("service", "version", "method", "tool", "status")
DURATION_LABELS = ("service", "version", "method", "tool")
ACTIVE_LABELS = ("service", "version")

DEFAULT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)

SUCCESS = "success"
ERROR = "error"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
STATUSES = (SUCCESS, ERROR, TIMEOUT, CANCELLED)

# Client-to-server request methods of the MCP specification, all protocol
# generations (2024-11-05 .. 2026-07-28). Anything else is recorded as `other`.
CLIENT_METHODS = frozenset(
    {
        "initialize",
        "server/discover",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "subscriptions/listen",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
    }
)
OTHER_METHOD = "other"

OTHER_TOOL = "_other"
DEFAULT_MAX_TOOLS = 100
# Longest tool name kept as a label value, in characters; longer names are
# `_other`. The MCP specification says tool names SHOULD be 1 to 128
# characters, and every series repeats its label values on each scrape, so a
# peer-chosen name must not be allowed to be longer than that.
MAX_TOOL_NAME_LENGTH = 128

SERVICE_ENV = "MCP_SLO_SERVICE"
VERSION_ENV = "MCP_SLO_VERSION"
