"""How the study's HTTP server was chosen, and what it changed: ``python benchmarks/study_servers.py``.

Two measurements, each side by side in one process on 127.0.0.1 (bounded: a few hundred requests each):

1. **aiohttp vs uvicorn + Starlette** on the study's load: 20 participants at once × 15 requests (a session, then
   answers that are each fsynced), ``Content-Length: ²``, a 1 GB ``Content-Length``, and a client trickling its
   headers a byte every 0.1 s for 12 s. aiohttp is not a colorbench dependency: ``pip install aiohttp`` first,
   else that column is skipped.
2. **the standard-library server before issue 27 vs the server now**, 20 participants at once doing 10 trials,
   three rounds; the earlier server is read from git (commit ``BEFORE``) into a temporary folder.

Run from the repository root (it uses tests/html_fixtures.py for a small run directory).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
#: The last commit with the standard-library study server (bench/study.py).
BEFORE = "3fe9d3a"


def _append(path: Path, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def start_aiohttp(log: Path) -> int:
    from aiohttp import web

    async def session(req):
        await req.read()
        return web.json_response({"ok": True})

    async def response(req):
        body = await req.json()
        await asyncio.to_thread(_append, log, json.dumps(body) + "\n")
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=4096)
    app.router.add_post("/api/session", session)
    app.router.add_post("/api/response", response)
    loop, port = asyncio.new_event_loop(), []

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start())
        port.append(runner.addresses[0][1])
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    while not port:
        time.sleep(0.01)
    return port[0]


def start_uvicorn(log: Path) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def session(req):
        await req.body()
        return JSONResponse({"ok": True})

    async def response(req):
        body = await req.json()
        await asyncio.to_thread(_append, log, json.dumps(body) + "\n")
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/api/session", session, methods=["POST"]),
                            Route("/api/response", response, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", backlog=1024))
    threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return sock.getsockname()[1]


def _post(port: int, path: str, body: dict) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def _raw_status(port: int, data: bytes, wait: float = 3.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        try:
            return s.recv(200).split(b"\r\n")[0].decode() or "(closed)"
        except socket.timeout:
            return f"(no answer in {wait:g} s)"


def _trickle(port: int, seconds: float = 12) -> str:
    s = socket.create_connection(("127.0.0.1", port), timeout=seconds + 2)
    t0 = time.monotonic()
    try:
        for b in b"POST /api/response HTTP/1.1\r\nHost: x\r\n" + b"X-a: b\r\n" * 100:
            s.send(bytes([b]))
            time.sleep(0.1)
            if time.monotonic() - t0 > seconds:
                return f"still open after {seconds:g} s"
    except OSError:
        return f"closed by the server after {time.monotonic() - t0:.1f} s"
    finally:
        s.close()
    return "sent everything"


def libraries() -> None:
    for name, start in (("aiohttp", start_aiohttp), ("uvicorn+starlette", start_uvicorn)):
        try:
            port = start(Path(tempfile.mkdtemp()) / "answers.jsonl")
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        t0 = time.perf_counter()
        with ThreadPoolExecutor(20) as ex:
            errors = sum(ex.map(lambda _: sum(_post(port, "/api/session" if i == 0 else "/api/response", {"i": i})
                                              != 200 for i in range(15)), range(20)))
        seconds = time.perf_counter() - t0
        head = "POST /api/response HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        odd = _raw_status(port, (head + "Content-Length: ²\r\n\r\n").encode())
        huge = _raw_status(port, (head + "Content-Length: 1000000000\r\n\r\n{}").encode())
        print(f"{name}: 20 participants x 15 requests: {seconds:.2f} s, {errors} errors; Content-Length ²: {odd}; "
              f"Content-Length 1e9: {huge}; header trickle: {_trickle(port)}", flush=True)


def before_and_now(rounds: int = 3) -> None:
    from html_fixtures import make_run_dir
    from test_study_server import Client, serving

    old = Path(tempfile.mkdtemp())
    (old / "templates").mkdir()
    for src, dst in (("bench/study.py", "oldstudy.py"), ("bench/templates/study.html.j2", "templates/study.html.j2"),
                     ("bench/templates/study.js", "templates/study.js")):
        (old / dst).write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:{src}"], check=True,
                                               capture_output=True).stdout)
    sys.path.insert(0, str(old))
    import oldstudy

    def old_participant(addr, barrier) -> int:
        barrier.wait()
        try:
            conn = http.client.HTTPConnection(*addr, timeout=30)
            conn.request("POST", "/api/session", "{}", {"Content-Type": "application/json"})
            session = json.loads(conn.getresponse().read())
            for t in session["trials"]:
                for side in ("left", "right"):
                    c = http.client.HTTPConnection(*addr, timeout=30)
                    c.request("GET", "/images/" + t[side])
                    c.getresponse().read()
                _post(addr[1], "/api/response", {"participant": session["participant"], "trial": t["trial"],
                                                 "image": t["image"], "choice": "left", "rt_ms": 1})
            return 0
        except (OSError, http.client.HTTPException, ValueError):
            return 1

    def new_participant(addr, barrier) -> int:
        barrier.wait()
        client = Client(addr)
        try:
            _, state = client.post("/api/session", {})
            while "current" in state:
                client.request("GET", state["current"]["image"])
                _, state = client.answer(state, "left")
            return 0
        except (OSError, http.client.HTTPException, ValueError):
            return 1

    def crowd(addr, participant) -> tuple[int, float]:
        barrier = threading.Barrier(20)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(20) as ex:
            failed = sum(ex.map(lambda _: participant(addr, barrier), range(20)))
        return failed, time.perf_counter() - t0

    for r in range(rounds):
        run = make_run_dir(Path(tempfile.mkdtemp()))
        server = oldstudy.StudyServer(("127.0.0.1", 0), run, oldstudy.prepare(run, pool=45), trials=10)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        old_failed, old_s = crowd(server.server_address[:2], old_participant)
        server.shutdown()
        server.server_close()
        with serving(make_run_dir(Path(tempfile.mkdtemp())), n_trials=10) as now:
            new_failed, new_s = crowd(now.server_address, new_participant)
        print(f"round {r}: before (stdlib): {old_failed}/20 participants failed (connection reset), {old_s:.2f} s; "
              f"now (uvicorn): {new_failed}/20 failed, {new_s:.2f} s", flush=True)


if __name__ == "__main__":
    print("load average:", os.getloadavg())
    libraries()
    before_and_now()
    print("load average:", os.getloadavg())
