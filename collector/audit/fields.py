"""Field values every audit record builds the same way, in-process or through the proxy: names
the client chose (bounded), error messages (redacted and bounded), sizes, identities."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from collector.audit.redact import redact_text

MAX_ERROR_TEXT = 1000  # characters of an error message kept (after redaction)
MAX_NAME = 256  # characters kept of a name the client chose (tool, prompt, resource URI, JSON-RPC id)
MIN_ECHO = 4  # an argument value this long or longer is masked where an error message repeats it
MAX_ECHO_VALUES = 200  # argument values looked for in one message
# pydantic's validation errors quote the input: "input_value='...'" (cut with "..." when long)
_INPUT_VALUE = re.compile(r"""input_value=('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^,\]\n]*)""")


def new_id() -> str:
    """A record's unique `request_id`: 128 random bits in hex (uuid4's cost without its formatting)."""
    return os.urandom(16).hex()


def bounded(value: Any) -> Any:
    """A client's string kept to MAX_NAME characters (marked when cut); anything else as it is."""
    if isinstance(value, str) and len(value) > MAX_NAME:
        return value[:MAX_NAME] + "…[cut]"
    return value


def error_field(code: object, message: object, arguments: Any = None, *, keep_values: bool = False) -> dict[str, Any]:
    """{code, message}: the code when it is an integer, the message redacted and bounded. Unless
    `keep_values` (the tool's values are recorded in full), the values of the request's
    `arguments` are masked where the message repeats them: servers echo their input in errors
    (a validation error quotes it), which would keep what the parameters mode left out."""
    text = message if isinstance(message, str) and message else None
    if text and not keep_values:
        text = _mask_echoes(text, arguments)
    return {"code": code if isinstance(code, int) and not isinstance(code, bool) else None,
            "message": redact_text(text[:MAX_ERROR_TEXT]) if text else None}


def _mask_echoes(text: str, arguments: Any) -> str:
    text = _INPUT_VALUE.sub("input_value=[value]", text)
    values = sorted({v for v in _strings(arguments, MAX_ECHO_VALUES) if len(v) >= MIN_ECHO}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, "[value]")
    return text


def _strings(value: Any, limit: int) -> Iterator[str]:
    """The string values (and numbers, as text) in a JSON value, at most `limit` of them."""
    stack, found = [value], 0
    while stack and found < limit:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            found += 1
            yield str(item)


def tool_error_text(result: Any) -> str | None:
    """The text a tool result flagged isError carries (its text content items, joined)."""
    content = result.get("content") if isinstance(result, Mapping) else getattr(result, "content", None)
    if not isinstance(content, list | tuple):
        return None
    texts = [item.get("text") if isinstance(item, Mapping) else getattr(item, "text", None) for item in content]
    return " ".join(t for t in texts if isinstance(t, str)) or None


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)  # built once


def json_size(value: Any) -> int | None:
    """Bytes of `value` as compact JSON (where the bytes on the wire are not known)."""
    if value is None:
        return None
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        value = dump(by_alias=True, exclude_none=True)
    try:
        return len(_COMPACT.encode(value).encode())
    except (TypeError, ValueError):
        return None


def client_info(info: Any) -> dict[str, Any] | None:
    """{name, version} of an MCP clientInfo (a dict on the wire, a model in-process), bounded."""
    if isinstance(info, Mapping):
        name, version = info.get("name"), info.get("version")
    elif info is not None:
        name, version = getattr(info, "name", None), getattr(info, "version", None)
    else:
        return None
    return {"name": bounded(name) if isinstance(name, str) else None,
            "version": bounded(version) if isinstance(version, str) else None}
