"""What an audit record may keep of a request: parameters, free text and headers, with secrets
and personal data taken out.

Parameter modes:
- "names" (the default): each argument's name, JSON type and size, never its value;
- "redacted": the values, with sensitive keys replaced whole and known secret and personal-data
  formats masked inside strings;
- "full": the values as given.

A tool classified "restricted" never has values recorded, whatever the mode. A mask says what
was there: "[REDACTED:jwt]", "[REDACTED:email]", "[REDACTED:card]", ...; a value under a
sensitive key ("password", "api_key", ...) is "[REDACTED:secret]".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

MODES = ("names", "redacted", "full")
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")

# Keys whose value is replaced whole. Compared after lower-casing and dropping "-" and "_":
# these anywhere in the key ("user_password", "x-api-key")...
_SENSITIVE_PARTS = (
    "password", "passwd", "passphrase", "secret", "apikey", "accesstoken", "refreshtoken", "idtoken",
    "authtoken", "bearertoken", "authorization", "cookie", "privatekey", "credential", "cardnumber",
    "creditcard", "ccnumber", "sessionid", "sessiontoken", "securitycode",
)
# ...and these only as one word of the key ("auth_header", "pin"), not inside another word
# ("author", "spinner", "max_tokens").
_SENSITIVE_WORDS = frozenset({
    "pwd", "pass", "token", "auth", "pin", "ssn", "cvv", "cvc", "session", "otp", "jwt", "bearer", "iban",
})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")  # snake, kebab and camelCase words


def is_sensitive_key(key: object) -> bool:
    """Whether a value under `key` is replaced whole (case, "-" and "_" ignored)."""
    if not isinstance(key, str):
        return False
    flat = key.lower().replace("-", "").replace("_", "")
    if any(part in flat for part in _SENSITIVE_PARTS):
        return True
    return any(word.lower() in _SENSITIVE_WORDS for word in _WORDS.findall(key))


# --- formats masked inside strings ----------------------------------------------------------


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _iban_valid(compact: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, letters as 10..35, mod 97 is 1."""
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _mask(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    return _mask("card") if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _iban(match: re.Match[str]) -> str:
    # The pattern is greedy over space-separated groups: the IBAN may end at an earlier group
    # ("DE89 3704 0044 0532 0130 00 EUR"), so try each cut from the longest.
    text = match.group()
    cuts = [len(text)] + [i for i in range(len(text) - 1, 0, -1) if text[i] == " "]
    for cut in cuts:
        if _iban_valid(text[:cut].replace(" ", "")):
            return _mask("iban") + text[cut:]
    return text


def _bearer(match: re.Match[str]) -> str:
    token = match.group("token")
    # "Bearer of bad news" is not a credential: a token is long or has a digit.
    if len(token) >= 20 or (len(token) >= 8 and re.search(r"[0-9]", token)):
        return f"{match.group('scheme')} {_mask('bearer')}"
    return match.group()


def _basic(match: re.Match[str]) -> str:
    # Basic credentials are base64 of "user:password"; "Basic information" is not.
    token = match.group("token")
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match.group()
    return f"{match.group('scheme')} {_mask('basic')}" if b":" in decoded else match.group()


# a private key block; its end may be cut off (a truncated message)
_PEM = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)"
_NOT_WORD_BEFORE = r"(?<![A-Za-z0-9_-])"
_NOT_WORD_AFTER = r"(?![A-Za-z0-9_-])"

# a name, optionally quoted, then = or : (the value is read after it, see _mask_assignments)
_KEY = re.compile(r"(?<![A-Za-z0-9_-])[\"']?(?P<name>[A-Za-z][A-Za-z0-9_.-]{1,40})[\"']?\s*[:=]\s*")
# a quoted string, or a bare token up to a space or a separator
_VALUE = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;&}\])]+")


def _mask_assignments(text: str) -> str:
    """`password=...`, `"api_key": "..."`: the value of a sensitive name in text (a serialized
    object, a query string, a log line) masked whole, its quotes kept. The names are found one
    after the other (a name's value may itself hold `name=value`, as a URL's query does)."""
    out, done = [], 0
    for key in _KEY.finditer(text):
        if key.start() < done or not is_sensitive_key(key.group("name")):
            continue
        value = _VALUE.match(text, key.end())
        if value is None:
            continue
        quote = value.group()[0] if value.group()[0] in "\"'" else ""
        out += [text[done:key.end()], quote, _mask("secret"), quote]
        done = value.end()
    return "".join(out) + text[done:]


# In order: a PEM block or a JWT first (a bearer token or an e-mail could be inside them), the
# authorization schemes (then the values of sensitive names: redact_text), the vendor formats,
# then personal data.
_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = tuple(
    (re.compile(pattern, flags), (lambda _m, kind=kind: _mask(kind)) if isinstance(kind, str) else kind)
    for pattern, flags, kind in (
        (_PEM, re.DOTALL, "private_key"),
        (_NOT_WORD_BEFORE + r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*" + _NOT_WORD_AFTER, 0, "jwt"),
        (r"\b(?P<scheme>(?i:bearer))\s+(?P<token>[A-Za-z0-9._~+/=-]+)", 0, _bearer),
        (r"\b(?P<scheme>(?i:basic))\s+(?P<token>[A-Za-z0-9+/]{6,}={0,2})", 0, _basic),
        (r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])", 0, "aws_access_key"),
        (_NOT_WORD_BEFORE + r"(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})", 0, "github_token"),
        (_NOT_WORD_BEFORE + r"xox[abprs]-[A-Za-z0-9-]{10,}", 0, "slack_token"),
        (_NOT_WORD_BEFORE + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", 0, "stripe_key"),
        (_NOT_WORD_BEFORE + r"AIza[0-9A-Za-z_-]{35}" + _NOT_WORD_AFTER, 0, "google_api_key"),
        (_NOT_WORD_BEFORE + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", 0, "api_key"),
        # bounded as RFC 5321 bounds an address (64-character local part, 63-character labels):
        # unbounded runs made this quadratic on a long word without "@" (seconds for 100 KB)
        (r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,63}", 0, "email"),
        (r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])", 0, _iban),
        # 13-19 digits, single spaces or dashes between them; not part of a longer token (a UUID,
        # a hex sha, "id-123...") on either side, nor the rest of an IBAN-like "DE89 ..."
        (r"(?<![A-Za-z0-9_])(?<![A-Za-z0-9_]-)(?<![A-Z]{2}[0-9]{2} )(?:[0-9][ -]?){12,18}[0-9](?!-?[A-Za-z0-9_])", 0, _card),
    )
)


_SCHEMES = 4  # the first _PATTERNS: PEM, JWT, bearer, basic


def redact_text(text: str) -> str:
    """`text` with every known secret and personal-data format masked (free text: error messages)."""
    for pattern, replace in _PATTERNS[:_SCHEMES]:
        text = pattern.sub(replace, text)
    text = _mask_assignments(text)
    for pattern, replace in _PATTERNS[_SCHEMES:]:
        text = pattern.sub(replace, text)
    return text


def redact(value: Any) -> Any:
    """`value` (JSON-like) with sensitive keys' values replaced whole and strings masked."""
    if isinstance(value, Mapping):
        # keys are masked too: a mapping can be keyed by e-mail addresses
        return {redact_text(str(k)): _mask("secret") if is_sensitive_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact_text(str(value))  # not JSON: recorded as text, masked


# --- parameters -----------------------------------------------------------------------------


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return "string"  # not JSON: would be sent as its text


def describe(value: Any) -> dict[str, Any]:
    """{"type", "size"}: size is characters for a string, items for an array or object, and the
    bytes of its JSON text for a number, a boolean or null."""
    kind = json_type(value)
    if kind == "string":
        size = len(value if isinstance(value, str) else str(value))
    elif kind in ("array", "object"):
        size = len(value)
    else:
        size = len(json.dumps(value))
    return {"type": kind, "size": size}


# A record keeps a bounded copy of what a client sent, whatever it sent (a stdio message has no
# size limit): so many characters of a string or key, items of an object or array, levels deep.
MAX_VALUE_CHARS = 1024
MAX_ITEMS = 100
MAX_DEPTH = 8
MORE = "…"  # the key that says how many items were left out


def record_params(arguments: Mapping[str, Any] | None, mode: str, classification: str = "internal") -> dict:
    """What the record keeps of a tool call's arguments in `mode`; a restricted tool: names only.
    Bounded: see MAX_VALUE_CHARS, MAX_ITEMS, MAX_DEPTH."""
    if mode not in MODES:
        raise ValueError(f"unknown parameter mode {mode!r}: use one of {', '.join(MODES)}")
    if classification not in CLASSIFICATIONS:
        raise ValueError(f"unknown classification {classification!r}: use one of {', '.join(CLASSIFICATIONS)}")
    if not arguments:
        return {}
    if mode == "names" or classification == "restricted":
        kept = {_cut(str(name)): describe(value) for name, value in list(arguments.items())[:MAX_ITEMS]}
        return _say_more(kept, len(arguments))
    if mode == "redacted":
        # strings are cut after masking: a secret cut in two might not be recognised
        return _cut_strings(redact(_bounded(arguments, cut=False)))
    return _bounded(_json_safe(arguments))


def _bounded(value: Any, depth: int = 0, *, cut: bool = True) -> Any:
    """`value` kept to the bounds: items past MAX_ITEMS left out (counted under MORE), anything
    deeper than MAX_DEPTH described by type and size, and with `cut` long strings and keys cut
    (marked)."""
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_DEPTH:
        return describe(value)
    if isinstance(value, Mapping):
        kept = {(_cut(str(k)) if cut else k): _bounded(v, depth + 1, cut=cut) for k, v in list(value.items())[:MAX_ITEMS]}
        return _say_more(kept, len(value))
    if isinstance(value, list | tuple):
        items = [_bounded(v, depth + 1, cut=cut) for v in value[:MAX_ITEMS]]
        return items + [{MORE: f"{len(value) - MAX_ITEMS} more items"}] if len(value) > MAX_ITEMS else items
    if isinstance(value, str) and cut:
        return _cut(value)
    return value


def _cut_strings(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_cut(str(k)): _cut_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v) for v in value]
    return _cut(value) if isinstance(value, str) else value


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else f"{text[:MAX_VALUE_CHARS]}…[cut {len(text) - MAX_VALUE_CHARS} chars]"


def _say_more(kept: dict, total: int) -> dict:
    if total > len(kept):
        kept[MORE] = f"{total - len(kept)} more"
    return kept


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


# --- headers --------------------------------------------------------------------------------

NEVER_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def filter_headers(headers: Mapping[str, str], allow: Collection[str] = (), deny: Collection[str] = ()) -> dict:
    """The headers named in `allow` (names lower-cased, values masked), never a credential header
    nor one in `deny`; names compare case-insensitively."""
    allowed = {name.lower() for name in allow} - NEVER_HEADERS - {name.lower() for name in deny}
    return {name.lower(): redact_text(str(value)) for name, value in headers.items() if name.lower() in allowed}
