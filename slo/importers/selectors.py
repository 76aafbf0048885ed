"""Just enough PromQL to find the vector selectors of a query, with their label matchers.

    selectors('sum(rate(a{x="1"}[5m])) / sum(rate(a[5m]))')
    -> [Selector("a", (Matcher("x", "=", "1"),), ...), Selector("a", (), ...)]

Functions, aggregations (with their `by (...)` lists), ranges (Sloth's `[{{.window}}]`
too), numbers and string arguments are skipped; a label value is decoded as PromQL
decodes it, so a quote or a brace inside it is part of the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class QueryError(ValueError):
    """A query mcp-slo cannot map onto its SLIs; the importer adds file and key path."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]
    start: int  # offsets in the query, to tell `a - b` from `a + b`
    end: int


_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LISTS | {"bool", "and", "or", "unless", "offset", "inf", "nan"}
_GROUPING = re.compile(r"(by|without)\s*\(", re.IGNORECASE)  # `sum by (x) (...)`
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def selectors(query: str) -> list[Selector]:
    """The vector selectors in `query`, in order; QueryError if it cannot be read."""
    text = query
    out: list[Selector] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "[":  # range or subquery: durations, or Sloth's {{.window}}
            end = text.find("]", i)
            if end < 0:
                raise QueryError(f"unclosed '[' at character {i + 1}")
            i = end + 1
        elif c in "\"'`":  # a string argument, e.g. of label_replace
            i = _string(text, i)[1]
        elif c == "{":
            matchers, end = _matchers(text, i)
            out.append(Selector(_metric_name(matchers, i), matchers, i, end))
            i = end
        elif c.isdigit() or c == ".":  # numbers and durations (offset 5m)
            while i < n and (text[i].isalnum() or text[i] in "._"):
                i += 1
        elif match := _IDENT.match(text, i):
            word, after = match.group(), _skip_space(text, match.end())
            if word.lower() in _LABEL_LISTS and text.startswith("(", after):
                close = text.find(")", after)
                i = close + 1 if close >= 0 else n
            elif text.startswith("(", after) or word.lower() in _KEYWORDS or _GROUPING.match(text, after):
                i = match.end()  # a function, an aggregation or a keyword
            elif text.startswith("{", after):
                matchers, i = _matchers(text, after)
                out.append(Selector(word, matchers, match.start(), i))
            else:
                out.append(Selector(word, (), match.start(), match.end()))
                i = match.end()
        else:
            i += 1  # operators and parentheses
    return out


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _string(text: str, i: int) -> tuple[str, int]:
    """Decode the string literal starting at text[i]; returns (value, index after it)."""
    quote, i, value = text[i], i + 1, []
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(value), i + 1
        if c == "\\" and quote != "`" and i + 1 < len(text):
            i += 1
            value.append(_ESCAPES.get(text[i], text[i]))
        else:
            value.append(c)
        i += 1
    raise QueryError(f"unterminated string starting with {quote}")


def _matchers(text: str, i: int) -> tuple[tuple[Matcher, ...], int]:
    """Parse `{label op "value", ...}` starting at the brace."""
    found: list[Matcher] = []
    i = _skip_space(text, i + 1)
    while not text.startswith("}", i):
        label = _LABEL.match(text, i)
        if not label:
            raise QueryError(f"cannot read the label matcher at character {i + 1}")
        i = _skip_space(text, label.end())
        op = next((o for o in ("=~", "!~", "!=", "=") if text.startswith(o, i)), None)
        if op is None:
            raise QueryError(f"expected =, !=, =~ or !~ after {label.group()!r}")
        i = _skip_space(text, i + len(op))
        if i >= len(text) or text[i] not in "\"'`":
            raise QueryError(f"the value of {label.group()!r} must be a quoted string")
        value, i = _string(text, i)
        found.append(Matcher(label.group(), op, value))
        i = _skip_space(text, i)
        if text.startswith(",", i):
            i = _skip_space(text, i + 1)
        elif not text.startswith("}", i):
            raise QueryError(f"expected ',' or '}}' at character {i + 1}")
    return tuple(found), i + 1


def _metric_name(matchers: tuple[Matcher, ...], where: int) -> str:
    for m in matchers:
        if m.label == "__name__" and m.op == "=":
            return m.value
    raise QueryError(f"the selector at character {where + 1} has no metric name")
