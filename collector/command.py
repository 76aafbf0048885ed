"""What every `mcp-slo` command shares: the exit codes, the error that ends a command, and
HOST:PORT. In the lowest layer, so that the proxy (the exporter-only install) has them too;
the standard library only.

A command's `run(args)` returns an exit code or raises CommandError; `mcp-slo` (mcp_slo.cli)
prints `mcp-slo COMMAND: message` on stderr and exits with the error's code.
"""

from __future__ import annotations

import ipaddress
import re

OK = 0  # done
FAILED = 1  # what the command judged or ran failed: a canary to roll back, an engine tick, the demo's stack
USAGE = 2  # bad usage or input: an option, a spec, a path, a port in use, a missing binary or extra
INCONCLUSIVE = 3  # too little to judge yet: wait and ask again (a canary)


class CommandError(Exception):
    """Ends a command with `message` (no "error:" nor command prefix) and `exit_code`."""

    def __init__(self, message: str, exit_code: int = USAGE):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# host: a name or IPv4 address, or an IPv6 address in brackets; port: ASCII digits.
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>[0-9]{1,5})")


def parse_host_port(text: str, option: str = "--listen") -> tuple[str, int]:
    """"127.0.0.1:8080", "localhost:0" or "[::1]:8080" -> (host, port); port 0 is any free one.

    The host is required (whether to listen on every interface is a choice to make, not a
    default), and an IPv6 address needs its brackets ("::1:8080" could be an address without
    a port). Anything else: ValueError naming `option`, in one line.
    """
    match = _HOST_PORT.fullmatch(text)
    if match and int(match["port"]) <= 65535 and (match["v6"] is None or _is_ipv6(match["v6"])):
        return match["v6"] or match["host"], int(match["port"])
    raise ValueError(f"{option} {text!r}: use HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")


def host_port(host: str, port: int) -> str:
    """The other way: ("::1", 8080) -> "[::1]:8080", for URLs and messages."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
