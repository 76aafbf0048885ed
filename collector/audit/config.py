"""The audit trail's options (`AuditConfig`), read and checked from a mapping (a YAML or JSON
section, keys as the field names), and the value formats they use: durations ("30d", "12h"),
sizes ("100MiB") and record times (RFC 3339 UTC with milliseconds).

Which parameter mode applies to a tool (`params_mode`):
- a tool classified "restricted": "names", always;
- a tool in `full_tools`: "full" (a per-tool allowance, whatever `params` says);
- a tool classified "confidential": at most "redacted";
- any other tool: `params`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector import durations
from collector.audit.chain import DEFAULT_KEY_ENV
from collector.audit.redact import CLASSIFICATIONS, MODES, record_params
from collector.audit.sinks import DEFAULT_MAX_BYTES, DEFAULT_ROTATE_EVERY

WHEN_FULL = ("drop", "block")

SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,6})?)\s*([a-z]*)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_duration(value: object, option: str = "duration") -> float:
    """Seconds in a duration as Prometheus writes them ("30d", "12h", "90m", "500ms", "1w", "1y":
    `collector.durations`, the one grammar of the product), or a number of seconds; ValueError
    naming `option` otherwise (and for 0 or less)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            seconds = durations.parse(value.strip() if isinstance(value, str) else value)
        except ValueError:
            raise ValueError(f"{option} {value!r} is not a duration like 30d, 12h or 90m") from None
    if seconds <= 0:
        raise ValueError(f"{option} {value!r} must be positive")
    return seconds


def parse_size(value: object, option: str = "size") -> int:
    """Bytes in "100MiB", "10MB", "512KiB", "1GiB", "4096", or a number of bytes; ValueError
    naming `option` otherwise (and for 0 or less)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip().lower())) \
            and match.group(2) in SIZE_UNITS:
        size = int(float(match.group(1)) * SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"{option} {value!r} is not a size like 100MiB, 10MB or 4096")
    if size <= 0:
        raise ValueError(f"{option} {value!r} must be positive")
    return size


def format_time(timestamp: float) -> str:
    """A record's `time`: RFC 3339 UTC with milliseconds and Z, e.g. 2025-01-31T12:00:00.123Z."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" off


def parse_time(text: str) -> float:
    """Seconds since the epoch in an RFC 3339 time (a time without offset is UTC); ValueError."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class AuditConfig:
    path: Path | None = None  # the JSON Lines file; None: no file
    max_bytes: int = DEFAULT_MAX_BYTES  # rotate at this size
    rotate_every: float | None = DEFAULT_ROTATE_EVERY  # rotate a file this old (seconds); None: by size only
    retention: float | None = None  # delete rotated files older than this (seconds); None: keep them
    stdout: bool = False  # also write each record as a JSON line on stdout
    otlp: bool = False  # also export each record as an OpenTelemetry log record (the otel extra)
    params: str = "names"  # names, redacted or full (see the module's docstring)
    tool_classification: Mapping[str, str] = field(default_factory=dict)
    default_classification: str = "internal"
    full_tools: frozenset[str] = frozenset()
    header_allow: tuple[str, ...] = ()  # headers recorded (values masked); credential headers never
    header_deny: tuple[str, ...] = ()
    queue_size: int = 10000
    when_full: str = "drop"  # drop (never slow a request) or block
    key_env: str = DEFAULT_KEY_ENV  # the environment variable holding the HMAC key
    user_claim: str = "sub"
    email_claim: str = "email"
    jwks: str | None = None  # a JWKS file or URL: bearer tokens are verified with it
    issuer: str | None = None
    audience: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AuditConfig:
        """Options from a mapping; ValueError in one line for an unknown option or a bad value."""
        if not isinstance(data, Mapping):
            raise ValueError("the audit options must be a mapping")  # noqa: TRY004 - one error for every bad option
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown audit option {unknown[0]!r}: use {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            values[name] = _OPTIONS[name](value, name) if name in _OPTIONS else value
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """ValueError in one line when an option is out of range or the options disagree."""
        if self.params not in MODES:
            raise ValueError(f"params {self.params!r}: use one of {', '.join(MODES)}")
        if self.when_full not in WHEN_FULL:
            raise ValueError(f"when_full {self.when_full!r}: use one of {', '.join(WHEN_FULL)}")
        for tool, classification in {**self.tool_classification, "": self.default_classification}.items():
            if classification not in CLASSIFICATIONS:
                where = f"tool {tool!r}" if tool else "default_classification"
                raise ValueError(f"{where}: unknown classification {classification!r}: use one of "
                                 f"{', '.join(CLASSIFICATIONS)}")
        for tool in sorted(self.full_tools):
            if self.classification(tool) == "restricted":
                raise ValueError(f"full_tools: tool {tool!r} is restricted: its values are never recorded")
        for name in ("max_bytes", "queue_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        for name in ("rotate_every", "retention"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if not _ENV_NAME.fullmatch(self.key_env):
            raise ValueError(f"key_env {self.key_env!r} is not an environment variable name")
        if (self.issuer or self.audience) and not self.jwks:
            raise ValueError("issuer and audience need jwks (the keys that verify the tokens)")

    def classification(self, tool: str | None) -> str:
        return self.tool_classification.get(tool or "", self.default_classification)

    def params_mode(self, tool: str | None) -> str:
        """The parameter mode for `tool` (the rules are in the module's docstring)."""
        classification = self.classification(tool)
        if classification == "restricted":
            return "names"
        if tool in self.full_tools:
            return "full"
        if classification == "confidential" and self.params == "full":
            return "redacted"
        return self.params

    def record_params(self, tool: str | None, arguments: Mapping[str, Any] | None) -> dict:
        """What a record keeps of `tool`'s arguments."""
        return record_params(arguments, self.params_mode(tool), self.classification(tool))


# --- option readers: (value, option name) -> value --------------------------------------------


def _optional_duration(value: object, name: str) -> float | None:
    return None if value is None or value in ("never", "off") else parse_duration(value, name)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")
    return value


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _names(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) \
            or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a list of names")
    return tuple(value)


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")  # noqa: TRY004
    return value


def _count(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, not {value!r}")  # noqa: TRY004
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")
    return value


def _classifications(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{name} must map tool names to a classification")
    return dict(value)


def _path(value: object, name: str) -> Path | None:
    return None if value is None else Path(_text(value, name))


_OPTIONS = {
    "path": _path,
    "max_bytes": lambda v, n: parse_size(v, n),
    "rotate_every": _optional_duration,
    "retention": _optional_duration,
    "stdout": _bool,
    "otlp": _bool,
    "params": _text,
    "tool_classification": _classifications,
    "default_classification": _text,
    "full_tools": lambda v, n: frozenset(_names(v, n)),
    "header_allow": _names,
    "header_deny": _names,
    "queue_size": _count,
    "when_full": _text,
    "key_env": _text,
    "user_claim": _text,
    "email_claim": _text,
    "jwks": _optional_text,
    "issuer": _optional_text,
    "audience": _optional_text,
}
