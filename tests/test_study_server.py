"""The study server as a participant, an adversary and a crowd see it (127.0.0.1 only; every loop bounded).

* answers are on disk before they are acknowledged; a kill -9 mid-answer loses none, and a restarted server goes
  on with the same sessions;
* a second ``colorbench study RUN`` refuses, naming the running server, and changes none of its files;
* trials are revealed one at a time, each as one composite image under a fresh name: an adversary reading
  names, bytes, sizes, timing or exact duplicates across 400 trials does not beat chance (binomial test), while
  the same adversary does beat it when the per-trial noise is turned off (so the test can fail);
* 20 concurrent participants are all served; malformed, oversized, slow and wrongly addressed requests are
  refused without harming anyone else.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from colorbench.study import StudyState, load_pool
from colorbench.study.server import StudyServer

from html_fixtures import make_run_dir

#: An adversary "beats chance" when a two-sided binomial test against 1/2 gives p below this (with the four
#: strategies below, a fair server fails this test by bad luck with probability < 4 × 0.001).
ALPHA = 0.001


@contextlib.contextmanager
def serving(run_dir: Path, **kw):
    server_kw = {k: kw.pop(k) for k in ("header_timeout", "body_timeout", "allow_hosts") if k in kw}
    state = StudyState(run_dir, load_pool(run_dir, pool=kw.pop("pool", 45)), **kw)
    state.restore()
    server = StudyServer(state, **server_kw).start()
    try:
        yield server
    finally:
        server.shutdown()


class Client:
    """One participant's HTTP client (a new connection per request, as simple browsers behave)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(*self.address, timeout=15)
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, data, {**hdrs, **(headers or {})})
        res = conn.getresponse()
        out = res.read()
        conn.close()
        return res.status, out

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        status, data = self.request("POST", path, body)
        return status, json.loads(data)

    def answer(self, state: dict, choice: str) -> tuple[int, dict]:
        cur = state["current"]
        token = cur["image"].split("/")[-1][:-4]
        return self.post("/api/response", {"participant": state["participant"], "trial": cur["trial"], "token": token,
                                           "choice": choice, "rt_ms": 10})


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- durability ----------------------------------------------------------------------------------------------


def test_answer_is_fsynced_before_it_is_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from colorbench.study import sessions as sessions_module

    run_dir = make_run_dir(tmp_path)
    synced: list[tuple[int, int]] = []  # (inode, size) of each file synced
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_ino, st.st_size))
        real_fsync(fd)

    monkeypatch.setattr(sessions_module.os, "fsync", fsync)
    with serving(run_dir, n_trials=2) as server:
        client = Client(server.server_address)
        status, state = client.post("/api/session", {})
        sessions = run_dir / "study" / "sessions.jsonl"
        assert status == 200 and (sessions.stat().st_ino, sessions.stat().st_size) in synced  # session on disk first
        status, ack = client.answer(state, "left")
        assert status == 200 and ack["answered"] == 1
        responses = run_dir / "study" / "responses.jsonl"
        st = responses.stat()
        assert (st.st_ino, st.st_size) in synced  # the whole line was on disk when the server answered
        assert _lines(responses)[0]["rt_ms"] == 10


@pytest.fixture
def start_cli_server():
    """Starts ``python -m colorbench.study RUN --port 0`` processes; any still running at the end is killed."""
    started: list[subprocess.Popen] = []

    def start(run_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
        proc, url = _start_cli_server(run_dir, *extra)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _start_cli_server(run_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "colorbench.study", str(run_dir), "--port", "0", "--trials", "8",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # the second line says where it listens
        if line.startswith("open http://"):
            return proc, line.split()[1]
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"the study server did not start: {proc.stderr.read()}")


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    return host, int(port)


@pytest.mark.slow  # three server processes start (~5 s each on a loaded 2-core machine)
def test_kill9_mid_answers_loses_nothing_and_a_restart_keeps_the_sessions(tmp_path: Path, start_cli_server) -> None:
    run_dir = make_run_dir(tmp_path)
    acked: set[tuple[str, int]] = set()
    states: dict[str, dict] = {}
    for round_ in range(3):  # three kill -9 while five participants answer as fast as they can
        proc, url = start_cli_server(run_dir, "--trials", "200")
        client = Client(_address(url))
        if not states:
            states = {s["participant"]: s for s in (client.post("/api/session", {})[1] for _ in range(5))}
        else:  # the restarted server knows every participant and where each one is
            for p, old in list(states.items()):
                status, now = client.post("/api/next", {"participant": p})
                assert status == 200 and now["answered"] == sum(1 for a in acked if a[0] == p), now
                states[p] = now
        stop = threading.Event()

        def participant(p: str) -> None:
            while not stop.is_set() and "current" in states[p]:
                try:
                    status, ack = client.answer(states[p], "left")
                except (OSError, http.client.HTTPException, json.JSONDecodeError):
                    return  # killed mid-request: not acknowledged, so it may or may not be on disk
                if status != 200:
                    return
                acked.add((p, states[p]["current"]["trial"]))
                states[p] = ack

        threads = [threading.Thread(target=participant, args=(p,)) for p in states]
        for t in threads:
            t.start()
        target, deadline = len(acked) + 40, time.monotonic() + 20
        while len(acked) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=20)
        assert "Traceback" not in proc.stderr.read()  # clients cut off by the kill: nothing but the kill itself
        on_disk = {(line["participant"], line["trial"]) for line in _lines(run_dir / "study" / "responses.jsonl")}
        assert acked <= on_disk, f"acknowledged but lost: {acked - on_disk}"
        acked |= on_disk  # an answer written just before the kill counts once it is on disk
    assert len(acked) > 5 and any("current" in s for s in states.values())  # killed mid-study


def test_second_start_refuses_names_the_server_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   start_cli_server) -> None:
    from colorbench.commands.cli import main

    run_dir = make_run_dir(tmp_path)
    proc, url = start_cli_server(run_dir)
    try:
        client = Client(_address(url))
        status, state = client.post("/api/session", {})
        assert status == 200 and client.answer(state, "left")[0] == 200
        state = client.post("/api/next", {"participant": state["participant"]})[1]
        before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run_dir / "study").iterdir()}
        assert main(["study", str(run_dir), "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert f"pid {proc.pid}" in err and url in err and "already running" in err
        after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run_dir / "study").iterdir()}
        assert after == before
        status, image = client.request("GET", state["current"]["image"])  # the running study still works
        assert status == 200 and image.startswith(b"\x89PNG")
        assert client.answer(state, "right")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        code = proc.wait(timeout=15)
    assert code == 0 and "Traceback" not in proc.stderr.read()
    assert (run_dir / "study" / "server.lock").read_text() == ""  # released; a kill -9 releases it too (flock)


def test_port_taken_by_another_program_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from colorbench.commands.cli import main

    run_dir = make_run_dir(tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        assert main(["study", str(run_dir), "--port", str(other.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "--port" in err and "Traceback" not in err


# --- sessions ------------------------------------------------------------------------------------------------


def test_trials_are_revealed_one_at_a_time(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    with serving(run_dir, n_trials=4, kind="pairwise", n_attention=1) as server:
        client = Client(server.server_address)
        status, state = client.post("/api/session", {})
        assert status == 200 and set(state) == {"participant", "kind", "trials", "answered", "seconds", "current"}
        assert set(state["current"]) == {"trial", "image"} and state["trials"] == 5
        session = server.state.sessions[state["participant"]]
        later = f"/images/{session.trials[1]['token']}.png"
        assert client.request("GET", later)[0] == 404  # not revealed yet
        assert client.request("GET", state["current"]["image"])[0] == 200
        body = {"participant": state["participant"], "trial": 1, "token": session.trials[1]["token"], "choice": "left",
                "rt_ms": 5}
        assert client.post("/api/response", body)[0] == 409  # not shown yet
        assert client.post("/api/response", {**body, "trial": 0, "token": "0" * 32})[0] == 400  # wrong token
        status, ack = client.answer(state, "right")
        assert status == 200 and ack["current"]["trial"] == 1
        assert client.answer(state, "right")[0] == 409  # replayed
        assert client.request("GET", later)[0] == 200
        names = {t["token"] for t in session.trials}
        assert len(names) == 5 and all(len(n) == 32 for n in names)


def test_restart_restores_sessions_and_expiry_drops_them(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    pool = load_pool(run_dir, pool=45)
    first = StudyState(run_dir, pool, n_trials=3)
    s = first.new_session()
    token0 = s.trials[0]["token"]
    first.record({"participant": s.participant, "trial": 0, "token": token0, "choice": "left", "rt_ms": 1})
    second = StudyState(run_dir, pool, n_trials=3)
    second.restore()
    assert second.restored == 1
    now = second.current(s.participant)
    assert now["answered"] == 1 and now["current"]["image"] == f"/images/{s.trials[1]['token']}.png"
    assert second.image(token0) is not None  # an answered trial's image stays viewable
    other_kind = StudyState(run_dir, pool, kind="pairwise", n_trials=3)  # restarted as another kind of study
    other_kind.restore()
    assert (other_kind.restored, other_kind.stale) == (0, 1)
    # an hour later, with a half-hour expiry: gone from memory, its answer still on disk
    third = StudyState(run_dir, pool, n_trials=3, expiry_s=1800)
    third.restore(now=time.time() + 3600)
    assert third.restored == 0 and len(_lines(run_dir / "study" / "responses.jsonl")) == 1
    second.expiry_s = 1800
    assert second.expire(now=time.time() + 3600) == 1
    with pytest.raises(Exception, match="expired"):
        second.current(s.participant)


# --- the leak ------------------------------------------------------------------------------------------------


def _png_halves(data: bytes) -> tuple[str, str]:
    from PIL import Image

    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    w = (arr.shape[1] - 8) // 2
    return (hashlib.sha256(arr[:, :w].tobytes()).hexdigest(), hashlib.sha256(arr[:, w + 8:].tobytes()).hexdigest())


def _adversary(run_dir: Path, dither: int, sessions: int = 10, trials: int = 40) -> dict[str, int]:
    """Collect 400 trials as an adversary would (many sessions, everything the server sends), then guess the real
    side of each four ways; returns the number of correct guesses of each strategy (out of sessions × trials)."""
    seen: list[dict] = []
    with serving(run_dir, n_trials=trials, dither=dither) as server:
        client = Client(server.server_address)
        for _ in range(sessions):
            status, state = client.post("/api/session", {})
            assert status == 200
            while "current" in state:
                t0 = time.perf_counter()
                status, data = client.request("GET", state["current"]["image"])
                seconds = time.perf_counter() - t0
                assert status == 200
                seen.append({"participant": state["participant"], "trial": state["current"]["trial"], "bytes": data,
                             "seconds": seconds, "name": state["current"]["image"], "halves": _png_halves(data)})
                status, state = client.answer(state, "left")
                assert status == 200
    truth = {(r["participant"], r["trial"]): r["real_side"] for r in _lines(run_dir / "study" / "responses.jsonl")}
    partners: dict[str, set[str]] = {}  # a half -> the other halves it was shown with
    for s in seen:
        a, b = s["halves"]
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    median_size = float(np.median([len(s["bytes"]) for s in seen]))
    median_time = float(np.median([s["seconds"] for s in seen]))
    correct = {"size": 0, "timing": 0, "name": 0, "duplicates": 0}
    rng = np.random.default_rng(0)
    for s in seen:
        real = truth[(s["participant"], s["trial"])]
        a, b = s["halves"]
        guesses = {
            "size": "left" if len(s["bytes"]) > median_size else "right",
            "timing": "left" if s["seconds"] > median_time else "right",
            "name": "left" if int(s["name"].split("/")[-1][0], 16) < 8 else "right",
            # the real photo comes back with other colorizations; a colorization comes back with the same photo
            "duplicates": ("left" if len(partners[a]) > len(partners[b])
                           else "right" if len(partners[b]) > len(partners[a])
                           else ("left", "right")[int(rng.integers(2))]),
        }
        for k, g in guesses.items():
            correct[k] += g == real
    return correct


def test_an_adversary_does_not_beat_chance_on_400_trials(tmp_path: Path) -> None:
    correct = _adversary(make_run_dir(tmp_path), dither=1)
    for strategy, k in correct.items():
        p = binomtest(k, 400, 0.5).pvalue
        assert p >= ALPHA, f"the {strategy} strategy guessed {k} of 400 real sides (binomial p = {p:.2g})"


def test_the_leak_test_catches_a_repeating_real_image(tmp_path: Path) -> None:
    # without the per-trial noise the real half repeats byte for byte across sessions: the same adversary wins
    correct = _adversary(make_run_dir(tmp_path), dither=0)
    assert binomtest(correct["duplicates"], 400, 0.5, alternative="greater").pvalue < ALPHA, correct


# --- load and hostile requests -------------------------------------------------------------------------------


def test_twenty_concurrent_participants_are_all_served(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    with serving(run_dir, n_trials=10) as server:
        barrier = threading.Barrier(20)

        def participant(k: int) -> int:
            client = Client(server.server_address)
            barrier.wait(timeout=30)  # all 20 ask for a session at the same moment
            status, state = client.post("/api/session", {})
            assert status == 200
            n = 0
            while "current" in state:
                assert client.request("GET", state["current"]["image"])[0] == 200
                status, state = client.answer(state, ("left", "right")[k % 2])
                assert status == 200
                n += 1
            return n

        with ThreadPoolExecutor(20) as pool:
            done = list(pool.map(participant, range(20)))  # a reset connection raises here
    assert done == [10] * 20
    lines = _lines(run_dir / "study" / "responses.jsonl")
    assert len(lines) == 200 and len({(r["participant"], r["trial"]) for r in lines}) == 200


def _raw(address: tuple[str, int], data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(address, timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(4096):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except socket.timeout:
            pass
    return b"".join(chunks)


def test_lab_network_host_names() -> None:
    from colorbench.study.server import allowed_hosts_for, interface_addresses

    local = allowed_hosts_for("127.0.0.1")
    assert local == ["127.0.0.1", "::1", "[::1]", "localhost"]
    lab = allowed_hosts_for("0.0.0.0", ["Lab-PC.local"])
    assert set(local) < set(lab) and "lab-pc.local" in lab and "0.0.0.0" not in lab
    assert socket.gethostname().lower() in lab and set(interface_addresses()) <= set(lab)


def test_malformed_oversized_and_misaddressed_requests_are_refused(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    with serving(run_dir, n_trials=2, allow_hosts=["lab-pc.local"]) as server:
        addr = server.server_address
        host = f"Host: 127.0.0.1:{addr[1]}\r\n".encode()
        post = b"POST /api/response HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
        assert _raw(addr, post + "Content-Length: ²\r\n\r\n{}".encode()).startswith(b"HTTP/1.1 400")
        assert _raw(addr, post + b"Content-Length: -1\r\n\r\n{}").startswith(b"HTTP/1.1 400")
        t0 = time.monotonic()
        assert _raw(addr, post + b"Content-Length: 1000000000\r\n\r\n{}").startswith(b"HTTP/1.1 413")
        assert time.monotonic() - t0 < 2  # refused at once, not after reading a gigabyte
        assert _raw(addr, post + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").startswith(b"HTTP/1.1 411")
        for bad_host in (b"Host: evil.example\r\n", b"Host: 127.0.0.1.evil.example\r\n", b""):
            got = _raw(addr, b"GET / HTTP/1.1\r\n" + bad_host + b"\r\n")
            assert got.startswith(b"HTTP/1.1 400"), (bad_host, got[:80])
        assert _raw(addr, b"GET / HTTP/1.1\r\nHost: localhost:1\r\n\r\n").startswith(b"HTTP/1.1 200")
        assert _raw(addr, b"GET / HTTP/1.1\r\nHost: LAB-PC.local:8000\r\n\r\n").startswith(b"HTTP/1.1 200")
        client = Client(addr)
        for body in (b"{not json", b"[]", json.dumps({"participant": "x", "trial": 0}).encode()):
            status, _ = _post_raw(client, body)
            assert status in (400, 410)
        assert _post_raw(client, b"{}", content_type="text/plain")[0] == 415
        for path in ("/images/../run.json", "/images/%2e%2e/run.json", "/run.json", "/study/responses.jsonl",
                     "/study/sessions.jsonl", "/images/", "/nothing"):
            status, data = client.request("GET", path)
            assert status == 404 and b"participant" not in data, path
        status, state = client.post("/api/session", {})  # still serving
        assert status == 200 and client.answer(state, "left")[0] == 200
    assert len(_lines(run_dir / "study" / "responses.jsonl")) == 1  # nothing bad was written


def _post_raw(client: Client, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*client.address, timeout=10)
    conn.request("POST", "/api/response", body, {"Content-Type": content_type})
    res = conn.getresponse()
    out = res.read()
    conn.close()
    return res.status, out


def test_slow_clients_are_cut_off_and_hold_up_no_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = make_run_dir(tmp_path)
    with serving(run_dir, n_trials=3, header_timeout=1.0, body_timeout=1.0) as server:
        addr = server.server_address
        head = f"POST /api/response HTTP/1.1\r\nHost: 127.0.0.1:{addr[1]}\r\n".encode()
        trickling = []
        for _ in range(30):  # 30 slowloris connections sending their headers one byte at a time
            s = socket.create_connection(addr, timeout=5)
            s.sendall(head[:5])
            trickling.append(s)
        body_slow = socket.create_connection(addr, timeout=5)  # headers at once, then a body that never comes
        body_slow.sendall(head + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        client = Client(addr)  # meanwhile a participant does the whole study
        status, state = client.post("/api/session", {})
        while status == 200 and "current" in state:
            assert client.request("GET", state["current"]["image"])[0] == 200
            status, state = client.answer(state, "left")
        assert status == 200 and state["answered"] == 3
        time.sleep(1.5)  # past the header timeout of every trickling connection
        for s in trickling:
            s.settimeout(3)
            assert s.recv(10) == b""  # the server hung up
            s.close()
        active = socket.create_connection(addr, timeout=5)  # one that keeps sending, a byte every 0.1 s
        t0 = time.monotonic()
        with pytest.raises(OSError):
            for b in head * 10:
                active.send(bytes([b]))
                time.sleep(0.1)
                assert time.monotonic() - t0 < 5, "a trickling client was never cut off"
        assert time.monotonic() - t0 < 3
        active.close()
        reply = body_slow.recv(200)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        body_slow.close()
        image = state.get("current", {}).get("image", "/")
        for request in (head + b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"par",  # hangs up
                        f"GET {image} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()):
            with socket.create_connection(addr, timeout=5) as s:
                s.sendall(request)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        time.sleep(0.3)
    assert [r for r in caplog.records if r.levelno >= 30] == []  # disconnects are quiet: no traceback, no warning
