"""The stdio proxy: runs an MCP server as a child process and relays its
line-delimited JSON-RPC to and from the proxy's own stdin/stdout.

Every line is forwarded byte for byte; a parsed copy goes to the `Tracker`.
The proxy speaks for itself only with JSON-RPC error responses to requests
the client is waiting on:

- the server did not answer within the request timeout: -32001 "Request timed
  out" (the late answer, if it ever comes, is dropped so the client never sees
  two responses to one id; the server is not sent anything, so it sees exactly
  what the client sent);
- the server exited (or closed its stdout) with requests pending: -32000
  "Connection closed", then the proxy exits with the server's exit code;
- a line longer than `max_message_bytes` either way is dropped as it arrives
  (never buffered whole): a request gets -32600 "Request too large" (and is
  counted as an error), a response is replaced by -32603 "Response too large",
  as far as the line's ends tell its id (`framing.partial_message`).

When the server exits by itself (a crash), the client's output is closed at
once but `run` returns only after `exit_grace` seconds, or a signal, so the
last counts can still be scraped from the CLI's /metrics.

A line from the client that is not JSON is forwarded unchanged and not
counted (see `_to_server`). Nothing a peer sent is ever logged: warnings say
what happened, debug lines name a message by its method label and size.

Runs on asyncio (what `anyio.run` uses by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import signal
import stat
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import ObjectSendStream, Process

from collector.metrics import method_label
from collector.proxy.framing import (
    DEFAULT_MAX_MESSAGE_BYTES,
    NOT_JSON,
    LineSplitter,
    Oversized,
    parse_json,
    partial_message,
)
from collector.proxy.tracker import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    RepeatedWarning,
    Tracker,
    error_response,
    is_request,
    is_request_id,
    is_response,
    messages,
)

logger = logging.getLogger(__name__)

READ_CHUNK = 1 << 16
# After the client hangs up, how long the server gets to exit on its own once its
# stdin is closed, and then after SIGTERM, before it is killed (MCP stdio shutdown).
CLOSE_GRACE = 5.0
TERM_GRACE = 2.0
# When the server exits by itself (a crash), how long the proxy stays up so that
# the last counts can be scraped: one scrape at the usual 15 s interval.
DEFAULT_EXIT_GRACE = 15.0
# How often the sums of repeated warnings (timeouts) are checked for logging.
REPORT_EVERY = 1.0
# JSON-RPC errors the proxy answers in place of a message too large to relay.
REQUEST_TOO_LARGE = -32600  # Invalid Request
RESPONSE_TOO_LARGE = -32603  # Internal error
# How long buffered output may take to flush when a pipe is closed.
FLUSH_TIMEOUT = 5.0


class ByteSource(Protocol):
    async def receive(self) -> bytes: ...  # raises anyio.EndOfStream at the end


class ByteSink(Protocol):
    async def send(self, data: bytes) -> None: ...  # raises anyio.BrokenResourceError when the peer is gone

    async def aclose(self) -> None: ...


# -- pipes ----------------------------------------------------------------------
#
# Pipes and sockets (the server's stdin/stdout; the proxy's own when an MCP
# client starts it) are read and written by the asyncio event loop directly:
# one wake-up per message, which is most of the proxy's cost per message.
# Anything else the proxy's stdin/stdout may be (a terminal, a file) is read
# and written by daemon threads with blocking calls: that works for every kind
# of file, leaves a terminal's flags alone, and never keeps the process alive.


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class PipeReader:
    """Reads a pipe or socket with the event loop; `receive()` returns chunks."""

    def __init__(self, reader: asyncio.StreamReader, name: str):
        self._reader = reader
        self._name = name

    @classmethod
    async def open(cls, fd: int, *, owned: bool = False, name: str = "the client") -> PipeReader:
        """`owned`: close `fd` at the end (else leave it open, like stdin)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_CHUNK, loop=loop)
        pipe = os.fdopen(fd, "rb", buffering=0, closefd=owned)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
        return cls(reader, name)

    async def receive(self) -> bytes:
        try:
            data = await self._reader.read(READ_CHUNK)
        except OSError as exc:
            logger.warning("reading from %s failed: %s", self._name, exc)
            data = b""
        if not data:
            raise anyio.EndOfStream
        return data


class _WriteProtocol(asyncio.Protocol):
    def __init__(self, name: str):
        self.name = name
        self.broken = anyio.Event()
        self.closed = asyncio.Event()
        self._resumed: asyncio.Event | None = None

    def pause_writing(self) -> None:
        self._resumed = asyncio.Event()

    def resume_writing(self) -> None:
        if self._resumed is not None:
            self._resumed.set()
            self._resumed = None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            logger.info("writing to %s failed: %s", self.name, exc)
        self.broken.set()  # the reader went away, or the pipe was closed
        self.closed.set()
        self.resume_writing()

    async def drain(self) -> None:
        if self._resumed is not None:
            await self._resumed.wait()


class PipeWriter:
    """Writes a pipe or socket with the event loop, in order, with backpressure.

    `send` may be called by several tasks at once. `broken` is set when the
    reader of the pipe went away.
    """

    def __init__(self, transport: asyncio.WriteTransport, protocol: _WriteProtocol, release_fd: int | None = None):
        self._transport = transport
        self._protocol = protocol
        self._release_fd = release_fd
        self.broken = protocol.broken

    @classmethod
    async def open(cls, fd: int, *, owned: bool = False, release: bool = False,
                   name: str = "the client") -> PipeWriter:
        """`owned`: close `fd` at the end; `release`: point it at /dev/null at the
        end (see `_release`); else leave it open."""
        loop = asyncio.get_running_loop()
        protocol = _WriteProtocol(name)
        pipe = os.fdopen(fd, "wb", buffering=0, closefd=owned)
        transport, _ = await loop.connect_write_pipe(lambda: protocol, pipe)
        return cls(transport, protocol, fd if release and not owned else None)  # type: ignore[arg-type]

    async def send(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise anyio.BrokenResourceError
        self._transport.write(data)
        await self._protocol.drain()

    async def aclose(self) -> None:
        """Flush what was sent (bounded by FLUSH_TIMEOUT), then close."""
        if not self._transport.is_closing():
            self._transport.close()  # once the buffered data is written
        with anyio.move_on_after(FLUSH_TIMEOUT):
            await self._protocol.closed.wait()
        if not self._protocol.closed.is_set():
            self.abort()  # nobody reads: give up on the rest
        if self._release_fd is not None:
            _release(self._release_fd)
            self._release_fd = None

    def abort(self) -> None:
        """Close at once, dropping what was not written yet."""
        if not self._protocol.closed.is_set():
            self._transport.abort()


def _release(fd: int) -> None:
    """Point `fd` at /dev/null: its reader sees the end of the stream now (stdout,
    while the proxy stays up after a crash), and the number stays taken, so
    nothing opened later lands on it and gets written to by mistake."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _wait_fd(fd: int, write: bool) -> None:
    select.select([], [fd], []) if write else select.select([fd], [], [])


class FdReader:
    """Reads a file descriptor in a daemon thread; `receive()` returns chunks."""

    def __init__(self, fd: int = 0):
        self.fd = fd
        self._send, self._recv = anyio.create_memory_object_stream[bytes](4)
        token = anyio.lowlevel.current_token()
        threading.Thread(target=self._run, args=(token,), name=f"mcp-slo-read-fd{fd}", daemon=True).start()

    def _run(self, token: Any) -> None:
        try:
            while True:
                try:
                    data = os.read(self.fd, READ_CHUNK)
                except BlockingIOError:
                    _wait_fd(self.fd, write=False)
                    continue
                except OSError as exc:
                    logger.warning("reading fd %d failed: %s", self.fd, exc)
                    return
                if not data:
                    return
                anyio.from_thread.run(self._send.send, data, token=token)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.RunFinishedError):
            return
        finally:
            try:
                anyio.from_thread.run_sync(self._send.close, token=token)
            except anyio.RunFinishedError:
                pass

    async def receive(self) -> bytes:
        return await self._recv.receive()


class FdWriter:
    """Writes to a file descriptor from a daemon thread, in order, with backpressure.

    `send` may be called by several tasks at once. `broken` is set when the
    reader of the descriptor went away.
    """

    def __init__(self, fd: int = 1, *, release: bool = False):
        """`release`: point `fd` at /dev/null once closed (see `_release`)."""
        self.fd = fd
        self.release = release
        self._send, self._recv = anyio.create_memory_object_stream[bytes](16)
        self._done = anyio.Event()
        self.broken = anyio.Event()
        token = anyio.lowlevel.current_token()
        threading.Thread(target=self._run, args=(token,), name=f"mcp-slo-write-fd{fd}", daemon=True).start()

    def _run(self, token: Any) -> None:
        broken = False
        try:
            while True:
                try:
                    data = anyio.from_thread.run(self._recv.receive, token=token)
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    return
                if broken:
                    continue  # drain, so senders never block on a dead peer
                try:
                    self._write_all(data)
                except OSError as exc:
                    logger.info("writing fd %d failed: %s", self.fd, exc)
                    broken = True
                    anyio.from_thread.run_sync(self.broken.set, token=token)
        except anyio.RunFinishedError:
            return
        finally:
            try:
                anyio.from_thread.run_sync(self._done.set, token=token)
            except anyio.RunFinishedError:
                pass

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                _wait_fd(self.fd, write=True)

    async def send(self, data: bytes) -> None:
        if self.broken.is_set():
            raise anyio.BrokenResourceError
        await self._send.send(data)

    async def aclose(self) -> None:
        """Flush what was sent (bounded by FLUSH_TIMEOUT) and stop the thread."""
        self._send.close()
        with anyio.move_on_after(FLUSH_TIMEOUT):
            await self._done.wait()
        if self.release:
            _release(self.fd)
            self.release = False


class _Serialized:
    """A sink that must not be sent to by two tasks at once (an anyio byte stream)."""

    def __init__(self, sink: ByteSink):
        self._sink = sink
        self._lock = anyio.Lock()
        self.broken = getattr(sink, "broken", None)

    async def send(self, data: bytes) -> None:
        async with self._lock:
            await self._sink.send(data)

    async def aclose(self) -> None:
        await self._sink.aclose()


async def open_stdio() -> tuple[ByteSource, ByteSink]:
    """This process's stdin and stdout, for the client side of the proxy."""
    reader = await PipeReader.open(0) if _is_pipe(0) else FdReader(0)
    writer = await PipeWriter.open(1, release=True) if _is_pipe(1) else FdWriter(1, release=True)
    return reader, writer


# -- the proxy ------------------------------------------------------------------


def exit_code(returncode: int) -> int:
    """A process's exit status as a shell reports it (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _message_size(line: bytes) -> int:
    """The bytes of the message on a line, without its line end."""
    return len(line) - (2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0)


def _describe(parsed: object) -> str:
    """A message as a debug line may name it: by its method's label, which is
    from a closed set, never by text the peer chose."""
    if isinstance(parsed, list):
        return f"a batch of {sum(1 for _ in messages(parsed))}"
    if not isinstance(parsed, dict):
        return "JSON that is not a message"
    if "method" not in parsed:
        return "a response"
    return f"{method_label(parsed['method'])} {'request' if 'id' in parsed else 'notification'}"


class StdioProxy:
    """Relays one client connection to one child MCP server, counting in `tracker`.

    `max_message_bytes` bounds one line either way (see `_too_large_from_client`);
    `exit_grace` is how long `run` waits before returning when the server exited
    by itself, so the last counts can still be scraped (a signal ends the wait
    when `run` handles signals).
    """

    def __init__(
        self,
        command: Sequence[str],
        tracker: Tracker,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        exit_grace: float = 0.0,
    ):
        if not command:
            raise ValueError("no server command to run")
        if max_message_bytes < 1:
            raise ValueError("the message size bound must be at least 1 byte")
        if exit_grace < 0:
            raise ValueError("the exit grace period cannot be negative")
        self.command = list(command)
        self.tracker = tracker
        self.env = env
        self.cwd = cwd
        self.max_message_bytes = max_message_bytes
        self.exit_grace = exit_grace
        self._stopping = False  # the proxy is stopping the server (client gone, signal)
        self._not_json = RepeatedWarning("lines from the client that are not JSON (forwarded unchanged, not counted)",
                                         clock=tracker.clock)

    async def run(self, client_in: ByteSource, client_out: ByteSink, *, handle_signals: bool = False) -> int:
        """Start the server, relay until it exits, and return its exit code.

        `client_out.send` is called by several tasks; a sink that does not allow
        that (not a PipeWriter, FdWriter or memory stream) is serialized.
        """
        if not isinstance(client_out, PipeWriter | FdWriter | ObjectSendStream):
            client_out = _Serialized(client_out)
        self._out = client_out
        self._wake = anyio.Event()
        self._grace_over = anyio.Event()
        self._debug = logger.isEnabledFor(logging.DEBUG)  # checked once: per-message lines are on the hot path
        process, self._server_in, self._server_out = await self._spawn()
        async with anyio.create_task_group() as outer:
            if handle_signals:
                outer.start_soon(self._handle_signals, process)
            try:
                code = await self._relay(client_in, process)
            finally:
                if process.returncode is None:  # the proxy itself was cancelled or failed
                    process.kill()
                    with anyio.CancelScope(shield=True):
                        await _exited_within(process, TERM_GRACE)
                self._report(final=True)
            await client_out.aclose()  # the client learns at once that the server is gone
            if not self._stopping:
                with anyio.move_on_after(self.exit_grace):
                    await self._grace_over.wait()
            outer.cancel_scope.cancel()
        return code

    async def _relay(self, client_in: ByteSource, process: Process) -> int:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._client_to_server, client_in, process)
            tg.start_soon(self._expire_loop)
            tg.start_soon(self._report_loop)
            broken = getattr(self._out, "broken", None)
            if isinstance(broken, anyio.Event):
                tg.start_soon(self._watch_client_gone, broken, process)
            code = await self._server_to_client(process)
            tg.cancel_scope.cancel()
        return code

    async def _spawn(self) -> tuple[Process, PipeWriter, PipeReader]:
        """Start the server with its stdin and stdout on pipes the event loop
        drives; its stderr is the proxy's stderr."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        try:
            process = await anyio.open_process(
                self.command, stdin=stdin_r, stdout=stdout_w, stderr=None, env=self.env, cwd=self.cwd
            )
        except BaseException:
            os.close(stdin_w)
            os.close(stdout_r)
            raise
        finally:
            os.close(stdin_r)
            os.close(stdout_w)
        logger.info("started %s (pid %d)", self.command[0], process.pid)
        to_server = await PipeWriter.open(stdin_w, owned=True, name="the server")
        from_server = await PipeReader.open(stdout_r, owned=True, name="the server")
        return process, to_server, from_server

    # -- client -> server --------------------------------------------------------

    async def _client_to_server(self, client_in: ByteSource, process: Process) -> None:
        splitter = LineSplitter(self.max_message_bytes)
        while True:
            try:
                chunk = await client_in.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                break
            # The lines that arrived together are accounted one by one, then
            # written together: one write (and one wake-up of the server) for all.
            await self._to_server(splitter.feed(chunk))
        await self._to_server([splitter.rest()])
        logger.info("the client closed its input; stopping the server")
        await self._stop_server(process)

    async def _to_server(self, lines: list[bytes | Oversized]) -> None:
        forward = []
        for line in lines:
            if isinstance(line, Oversized):
                await self._too_large_from_client(line)
                continue
            forward.append(line)
            if not line.strip():
                continue
            parsed = parse_json(line)
            if parsed is NOT_JSON:
                # Not JSON: a transparent proxy forwards it unchanged and lets the
                # server answer (the spec's -32700 parse error, id null), exactly as
                # without the proxy. It is not a request, so it is not counted, and
                # nothing waits on it, so the proxy cannot hang on it.
                self._not_json.add()
                if self._debug:
                    logger.debug("client: a line that is not JSON, %d bytes", len(line))
                continue
            if self._debug:
                logger.debug("client: %s, %d bytes", _describe(parsed), len(line))
            if self.tracker.from_client(parsed, size=_message_size(line)):
                self._wake.set()
        await self._send_server(b"".join(forward))

    async def _send_server(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self._server_in.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the server is gone or going: _server_to_client answers what is pending

    async def _too_large_from_client(self, line: Oversized) -> None:
        """A line over the bound was dropped, not relayed. A request is answered
        (and counted) as an error; the client's answer to a server request is
        replaced by an error for the server; anything else is just dropped."""
        msg = partial_message(line)
        if is_request(msg):
            self.tracker.from_client(msg, size=line.size)
            await self._to_client([self._too_large(msg["id"], "Request", REQUEST_TOO_LARGE)])
            done = f"answered it with error {REQUEST_TOO_LARGE}"
        elif is_response(msg) and is_request_id(msg["id"]):
            await self._send_server(self._too_large(msg["id"], "Response", RESPONSE_TOO_LARGE))
            done = f"sent the server error {RESPONSE_TOO_LARGE} instead"
        else:
            done = "its id is unknown, so nothing was answered"
        logger.warning("dropped a %d-byte message from the client, over --max-message-bytes %d: %s",
                       line.size, self.max_message_bytes, done)

    def _too_large(self, request_id: object, what: str, code: int) -> bytes:
        return _line(error_response(request_id, code,
                                    f"{what} too large: over the proxy's limit of {self.max_message_bytes} bytes"))

    # -- server -> client --------------------------------------------------------

    async def _server_to_client(self, process: Process) -> int:
        splitter = LineSplitter(self.max_message_bytes)
        while True:
            try:
                chunk = await self._server_out.receive()
            except anyio.EndOfStream:
                break
            await self._to_client(splitter.feed(chunk))
        await self._to_client([splitter.rest()])
        code = exit_code(await self._wait_exit(process))
        with anyio.CancelScope(shield=True):
            for _, request_id in self.tracker.fail():
                await self._send(_line(error_response(request_id, CONNECTION_CLOSED, "Connection closed")))
        if not self._stopping and self.exit_grace > 0:
            logger.log(logging.WARNING if code else logging.INFO,
                       "the server exited with code %d; staying up %gs (--exit-grace) so the last counts can be "
                       "scraped", code, self.exit_grace)
        elif not self._stopping or code:
            logger.log(logging.WARNING if code else logging.INFO, "the server exited with code %d", code)
        return code

    async def _to_client(self, lines: list[bytes | Oversized]) -> None:
        forward = []
        for line in lines:
            if isinstance(line, Oversized):
                await self._too_large_from_server(line)
                continue
            if line.strip():
                parsed = parse_json(line)
                if parsed is NOT_JSON:
                    if self._debug:
                        logger.debug("server: a line that is not JSON, %d bytes", len(line))
                else:
                    if self._debug:
                        logger.debug("server: %s, %d bytes", _describe(parsed), len(line))
                    if not self.tracker.from_server(parsed, size=_message_size(line)):
                        continue  # a late answer to a request the proxy answered as timed out
            forward.append(line)
        data = b"".join(forward)
        if data:
            await self._send(data)

    async def _too_large_from_server(self, line: Oversized) -> None:
        """A line over the bound was dropped, not relayed. The client gets an
        error in place of a response (counted for its request); a server request
        is answered with an error; anything else is just dropped."""
        msg = partial_message(line)
        if is_response(msg) and is_request_id(msg["id"]):
            await self._to_client([self._too_large(msg["id"], "Response", RESPONSE_TOO_LARGE)])
            done = f"answered the client with error {RESPONSE_TOO_LARGE} instead"
        elif is_request(msg):
            await self._send_server(self._too_large(msg["id"], "Request", REQUEST_TOO_LARGE))
            done = f"answered it with error {REQUEST_TOO_LARGE}"
        else:
            done = "its id is unknown, so nothing was answered"
        logger.warning("dropped a %d-byte message from the server, over --max-message-bytes %d: %s",
                       line.size, self.max_message_bytes, done)

    async def _send(self, data: bytes) -> None:
        try:
            await self._out.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client is gone: _watch_client_gone stops the server

    # -- timeouts and warnings -------------------------------------------------

    async def _expire_loop(self) -> None:
        tracker = self.tracker
        while True:
            deadline = tracker.next_deadline()
            if deadline is None:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            delay = deadline - tracker.clock()
            if delay > 0:
                # Later requests have later deadlines: nothing can expire sooner.
                await anyio.sleep(delay)
                continue
            # The tracker logs timeouts, summed up: one line per request could be
            # hundreds of thousands.
            for _, request_id in tracker.expire():
                await self._send(_line(error_response(request_id, REQUEST_TIMEOUT, "Request timed out")))

    async def _report_loop(self) -> None:
        while True:
            await anyio.sleep(REPORT_EVERY)
            self._report()

    def _report(self, *, final: bool = False) -> None:
        """Log the sums of repeated warnings that are due."""
        self.tracker.report(final=final)
        self._not_json.report(final=final)

    # -- process lifetime --------------------------------------------------------

    async def _watch_client_gone(self, broken: anyio.Event, process: Process) -> None:
        await broken.wait()
        logger.info("the client stopped reading; stopping the server")
        await self._stop_server(process)

    async def _handle_signals(self, process: Process) -> None:
        """SIGTERM, SIGINT, SIGHUP: pass the signal on, then make sure the server
        stops; once the server is gone, end the exit grace period."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if process.returncode is not None:
                    logger.info("got signal %d; exiting", signum)
                    self._grace_over.set()
                    continue
                logger.info("got signal %d; passing it to the server", signum)
                process.send_signal(signum)
                await self._stop_server(process)

    async def _stop_server(self, process: Process) -> None:
        """MCP stdio shutdown: close the server's stdin, wait, SIGTERM, wait, SIGKILL."""
        self._stopping = True
        await self._server_in.aclose()
        if await _exited_within(process, CLOSE_GRACE):
            return
        logger.warning("the server did not exit %gs after its input closed; terminating it", CLOSE_GRACE)
        process.terminate()
        if not await _exited_within(process, TERM_GRACE):
            process.kill()

    async def _wait_exit(self, process: Process) -> int:
        """The server closed its stdout: it is exiting, or about to be stopped."""
        if not await _exited_within(process, CLOSE_GRACE):
            logger.warning("the server closed its stdout but is still running; terminating it")
            process.terminate()
            if not await _exited_within(process, TERM_GRACE):
                process.kill()
            while process.returncode is None:
                await anyio.sleep(0.01)
        self._server_in.abort()  # nothing can be delivered to a server that is gone
        return process.returncode  # type: ignore[return-value]


async def _exited_within(process: Process, seconds: float) -> bool:
    # Polls returncode rather than process.wait(), which on asyncio also waits for
    # the pipes to close (a grandchild holding them would look like a hung server).
    with anyio.move_on_after(seconds):
        while process.returncode is None:
            await anyio.sleep(0.01)
    return process.returncode is not None


async def run_stdio_proxy(
    command: Sequence[str],
    tracker: Tracker,
    *,
    client_in: ByteSource | None = None,
    client_out: ByteSink | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    handle_signals: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    exit_grace: float = 0.0,
) -> int:
    """Proxy between `client_in`/`client_out` (default: this process's stdin and
    stdout) and `command`; returns the server's exit code."""
    if client_in is None or client_out is None:
        own_in, own_out = await open_stdio()
        client_in = client_in if client_in is not None else own_in
        client_out = client_out if client_out is not None else own_out
    proxy = StdioProxy(command, tracker, env=env, cwd=cwd, max_message_bytes=max_message_bytes,
                       exit_grace=exit_grace)
    return await proxy.run(client_in, client_out, handle_signals=handle_signals)
