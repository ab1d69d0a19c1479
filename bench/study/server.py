"""The study's HTTP server: Starlette routes served by uvicorn, one server per run directory.

Why uvicorn + Starlette (``benchmarks/study_servers.py``, run 2026-12-07 on 127.0.0.1, 2 cores shared with
other jobs, load average 2.4–7): both it and aiohttp served 20 concurrent participants × 15 requests with an
fsync per answer in 0.4–0.9 s with 0 errors (the standard-library server this replaces failed 4–7 of 20
participants with reset connections, its accept queue holding 5), and both answer ``Content-Length: ²`` with
400; aiohttp logged a traceback for each malformed request and each client that hung up mid-body, uvicorn stayed
quiet, and uvicorn is pure Python over h11 (no compiled dependencies). Neither closes a connection that trickles
its request headers (both still open after 12 s), so :func:`_header_timeout_protocol` adds that one guard on top
of uvicorn's own limits (backlog, keep-alive timeout, header size, concurrency).

Routes (everything else is 404; answers are JSON):

* ``GET /`` the page; ``GET /images/<token>.png`` the composite of a revealed trial;
* ``POST /api/session`` a new participant; ``POST /api/next`` ``{"participant"}`` the current trial (a reloaded
  page or a restarted server goes on where it was); ``POST /api/response`` ``{"participant", "trial", "token",
  "choice": "left"|"right", "rt_ms"}`` one answer, acknowledged only once it is on disk.

Requests must name an allowed ``Host`` (the bound address, this machine's names, ``--allow-host``), carry a
``Content-Length`` of at most :data:`MAX_BODY` bytes and send their headers and body within
:data:`HEADER_TIMEOUT` / :data:`BODY_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from colorbench.results.rundir import RunDirLocked
from colorbench.study.sessions import BadRequest, StudyState

#: Largest request body accepted (an answer is ~200 bytes).
MAX_BODY = 4096
#: Seconds a client may take to send its request line and headers (from connecting, or after the last answer).
HEADER_TIMEOUT = 10.0
#: Seconds a client may take to send its body once the headers are in.
BODY_TIMEOUT = 10.0
#: Connections waiting to be accepted (the standard library's default was 5).
BACKLOG = 1024
#: Open connections at most; more are answered 503.
MAX_CONNECTIONS = 500
LOCK_FILE = Path("study") / "server.lock"
_TOKEN_PATH = re.compile(r"^/images/([0-9a-f]{32})\.png$")
TEMPLATES = Path(__file__).parent / "templates"


class StudyAlreadyRunning(RunDirLocked):
    """Another ``colorbench study`` serves this run directory (the message names its pid and address)."""


class ServerLock:
    """``RUN/study/server.lock``: an exclusive ``flock`` held while a server runs, with its pid and address inside.

    Opening never truncates: a second start that finds the lock taken reads who holds it and leaves the file as
    it was. The kernel drops the lock when the process dies (kill -9 included), so a stale file never blocks.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read()
            os.close(self.fd)
            who = (f"pid {holder.get('pid')} at {holder.get('url')} (started {holder.get('started')})"
                   if holder else "a process that has not written its address yet")
            raise StudyAlreadyRunning(
                f"a study server is already running for {run_dir}: {who}. Participants can keep using it; to "
                f"restart it, stop that one first (Ctrl-C in its terminal, or `kill {holder.get('pid', 'PID')}`): "
                "sessions and answers are kept") from None

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(os.pread(self.fd, 4096, 0).decode("utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}

    def announce(self, **info: Any) -> None:
        """Write who holds the lock (pid, address) for a second start to report."""
        data = json.dumps({"pid": os.getpid(), **info}).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def _header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request head within ``seconds``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _in_request(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _too_slow(self) -> None:
            self._deadline = None
            if not self._in_request() and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self._in_request():
                self._disarm()  # the head is in; the body has BODY_TIMEOUT inside the app

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def render_page(state: StudyState) -> bytes:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("study.html.j2").render(
        kind=state.kind, trials=state.n_trials + state.n_attention, seconds=state.seconds, attention=state.n_attention,
        js=(TEMPLATES / "study.js").read_text(encoding="utf-8"),
    ).encode("utf-8")


def build_app(state: StudyState, allowed_hosts: Sequence[str], body_timeout: float = BODY_TIMEOUT):
    """The Starlette application of one study (routes in the module docstring)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    page = render_page(state)
    common = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    def error(status: int, message: str, close: bool = False) -> Response:
        headers = {**common, **({"Connection": "close"} if close else {})}
        return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)

    async def body_of(request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length is None:
            raise BadRequest("a Content-Length header is required", status=411)
        if not length.isdigit() or int(length) > MAX_BODY:
            raise BadRequest(f"the request body must be at most {MAX_BODY} bytes, got Content-Length {length}",
                             status=413)
        try:
            raw = await asyncio.wait_for(request.body(), body_timeout)
        except asyncio.TimeoutError:
            raise BadRequest(f"the request body did not arrive within {body_timeout:g} s", status=408) from None
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            raise BadRequest("Content-Type must be application/json", status=415)
        try:
            obj = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise BadRequest("body must be a JSON object")
        return obj

    def api(handler):
        async def endpoint(request: Request) -> Response:
            try:
                body = await body_of(request)
                out = await run_in_threadpool(handler, body)
            except BadRequest as exc:
                return error(exc.status, str(exc), close=exc.status in (408, 411, 413))
            except ClientDisconnect:  # the client hung up mid-body: nothing was recorded, nobody reads the answer
                return error(400, "the client disconnected", close=True)
            except OSError as exc:  # the answer could not be written: say so, never acknowledge it
                return error(500, f"could not save: {exc}")
            return JSONResponse(out, headers=common)

        return endpoint

    def new_session(body: dict[str, Any]) -> dict[str, Any]:
        return state.public(state.new_session())

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=common)

    async def image(request: Request) -> Response:
        match = _TOKEN_PATH.match(request.url.path)
        data = await run_in_threadpool(state.image, match.group(1)) if match else None
        if data is None:
            return error(404, f"not found: {request.url.path}")
        return Response(data, media_type="image/png", headers=common)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(getattr(exc, "status_code", 404), f"not found: {request.url.path}")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/index.html", index, methods=["GET"]),
        Route("/images/{name}", image, methods=["GET"]),
        Route("/api/session", api(new_session), methods=["POST"]),
        Route("/api/next", api(lambda b: state.current(b.get("participant"))), methods=["POST"]),
        Route("/api/response", api(state.record), methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
                     exception_handlers={404: not_found, 405: not_found})


def interface_addresses() -> list[str]:
    """This machine's IPv4 addresses, one per network interface (Linux ``SIOCGIFADDR``; empty elsewhere)."""
    import struct

    out = []
    try:
        interfaces = socket.if_nameindex()
    except OSError:
        return out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in interfaces:
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
            except OSError:
                continue  # no IPv4 address on this interface
            out.append(socket.inet_ntoa(packed[20:24]))
    return out


def allowed_hosts_for(host: str, extra: Sequence[str] = ()) -> list[str]:
    """The ``Host`` names a browser may use for a server bound to ``host`` (the port is not compared).

    Loopback: 127.0.0.1, localhost, ::1. A wildcard or LAN address adds this machine's host name, its fully
    qualified name and its interfaces' IPv4 addresses (participants on a lab network type one of those), plus
    ``extra`` (``--allow-host``; IPv6 addresses go there).
    """
    names = {"127.0.0.1", "localhost", "::1", "[::1]"}
    if host not in ("127.0.0.1", "localhost", "::1"):
        names.add(host)
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        try:
            names |= set(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
        names |= set(interface_addresses())
        names.discard("0.0.0.0")
        names.discard("::")
    names |= {h.strip().lower() for h in extra if h.strip()}
    return sorted(n.lower() for n in names)


class StudyServer:
    """A bound study server: ``serve_forever()`` in the foreground, or ``start()`` in a thread (tests).

    Binding happens here, so "address already in use" is a clear error before anything is served.

    Raises:
        ValueError: the address cannot be bound (the message names it and the fix).
    """

    def __init__(self, state: StudyState, host: str = "127.0.0.1", port: int = 0, allow_hosts: Sequence[str] = (),
                 header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        import uvicorn

        self.state = state
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; another program holds it: "
                             "choose another --port (0 picks a free one)") from None
        self.sock.listen(BACKLOG)
        self.server_address = self.sock.getsockname()[:2]
        self.allowed_hosts = allowed_hosts_for(host, allow_hosts)
        if not os.environ.get("COLORBENCH_STUDY_LOG"):  # malformed requests are answered 400, not logged; errors are
            logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
        config = uvicorn.Config(
            build_app(state, self.allowed_hosts, body_timeout), http=_header_timeout_protocol(header_timeout),
            lifespan="off", access_log=bool(os.environ.get("COLORBENCH_STUDY_LOG")), log_config=None,
            log_level="info" if os.environ.get("COLORBENCH_STUDY_LOG") else "error", backlog=BACKLOG,
            timeout_keep_alive=5, limit_concurrency=max_connections, server_header=False,
            h11_max_incomplete_event_size=16 * 1024, timeout_graceful_shutdown=2)
        self.uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def participant_urls(self) -> list[str]:
        """The addresses to hand to participants: the bound one, or for a wildcard each non-loopback address."""
        host, port = self.server_address
        if host not in ("0.0.0.0", "::"):
            return [self.url]
        lan = [h for h in self.allowed_hosts if not (h.startswith("127.") or h in ("localhost", "::1", "[::1]"))]
        return [f"http://{h}:{port}/" for h in lan] or [f"http://127.0.0.1:{port}/"]

    def serve_forever(self) -> None:
        """Serve until Ctrl-C / SIGTERM (uvicorn handles both and finishes the requests in flight)."""
        self.uvicorn.run(sockets=[self.sock])

    def start(self) -> "StudyServer":
        """Serve from a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.uvicorn.serve(sockets=[self.sock])),
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the study server did not start")
            time.sleep(0.01)
        return self

    def shutdown(self) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
