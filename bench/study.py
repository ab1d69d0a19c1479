"""``colorbench study RUN``: a two-alternative forced-choice naturalness study served from a run directory.

Each trial shows a real test image and one method's colorization of the same image side by side, in random
order, optionally for a limited time (``--seconds``; Zhang et al., ECCV 2016, §3.1 showed each pair for one
second); the participant clicks the one that looks real. Each answer is POSTed as JSON to ``/api/response`` and
appended to ``RUN/study/responses.jsonl`` (one JSON object a line, flushed and fsynced before the server answers,
so nothing acknowledged is lost when the server is killed). ``colorbench report RUN`` then adds each method's
fooling rate (share of trials in which the colorization was chosen) with its Wilson 95 % interval and n.

The server is the standard library's :class:`http.server.ThreadingHTTPServer`; it binds 127.0.0.1 unless
``--host`` says otherwise and answers only these paths:

* ``GET /`` the study page; ``GET /images/<name>.png`` the study's images (copied into ``RUN/study/images/``
  under names that do not tell real from colorized; nothing else of the run directory is served);
* ``POST /api/session`` a new participant id and its trials; ``POST /api/response`` one answer
  (``{"participant", "trial", "image", "choice": "left"|"right", "rt_ms"}``; the server adds the method and the
  side of the real image from the session, so the page never holds them).

Malformed, inconsistent or oversized requests get 400, unknown paths 404. Sessions live in memory: after a
restart a participant reloads the page and starts a new session (answers already written stay).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import secrets
import shutil
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

import numpy as np

#: Largest request body accepted (a response is ~200 bytes).
MAX_BODY = 4096
#: Images of each dataset taken into the study (a seeded subset when the run holds more).
DEFAULT_POOL = 200
DEFAULT_TRIALS = 40
TEMPLATES = Path(__file__).parent / "templates"
_IMAGE_NAME = re.compile(r"^[0-9a-f]{24}\.png$")


@dataclass(frozen=True)
class Pair:
    """One study item: a real image and one method's colorization of it (file names under ``study/images``)."""

    dataset: str
    method: str  # the column label: the method, with its seed when a method has several
    image: str  # the test image id
    real_file: str
    fake_file: str


@dataclass
class Session:
    participant: str
    trials: list[dict[str, Any]]  # trial, dataset, image, method, real_side, left, right
    answered: set[int] = field(default_factory=set)


def _png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    hwc = np.ascontiguousarray(np.transpose(pixels, (1, 2, 0)))
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc).save(tmp, format="PNG")
    tmp.replace(path)


def prepare(run_dir: str | Path, methods: Sequence[str] = (), pool: int = DEFAULT_POOL, seed: int = 0) -> list[Pair]:
    """Write the study's images into ``RUN/study/images/`` and return every (real, colorized) pair.

    Only successful methods with saved colorizations are used, and only images whose real version the run
    directory holds. File names are salted hashes, so neither the page nor its URLs tell real from colorized.

    Raises:
        FileNotFoundError: ``run_dir`` has no records.
        ValueError: an unknown method in ``methods``, or nothing to show (no real images or no colorizations).
    """
    from colorbench.reports.images import image_sets
    from colorbench.results.rundir import RunDir

    run_dir = Path(run_dir)
    if not RunDir(run_dir).records():  # not a run directory -> NotARunDirectory naming the fix
        raise FileNotFoundError(f"{run_dir} holds no finished cell yet: run `colorbench run --out {run_dir}` first")
    sets = image_sets(run_dir)
    known = {c.method for s in sets for c in s.columns} | {c.label for s in sets for c in s.columns}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown} for this run; it has {sorted(known)}")
    out = run_dir / "study" / "images"
    if out.exists():
        shutil.rmtree(out)  # a new salt each start: stale names must not stay servable
    out.mkdir(parents=True)
    salt = secrets.token_hex(16)

    def name(*parts: str) -> str:
        return hashlib.sha256("\0".join((salt, *parts)).encode()).hexdigest()[:24] + ".png"

    rng = random.Random(seed)
    pairs: list[Pair] = []
    for iset in sets:
        real_ids = [i for i in iset.order if i in iset.real] or list(iset.real)
        if not real_ids:
            continue
        chosen = set(rng.sample(real_ids, min(pool, len(real_ids))))
        real_files: dict[str, str] = {}
        for col in iset.columns:
            if col.status != "ok" or (methods and col.method not in methods and col.label not in methods):
                continue
            got = col.load_predictions()
            if got is None:
                continue
            arr, ids = got
            for n, image in enumerate(ids):
                if image not in chosen:
                    continue
                if image not in real_files:
                    real_files[image] = name(iset.dataset, "real", image)
                    _png(iset.real[image], out / real_files[image])
                fake = name(iset.dataset, col.label, image)
                _png(arr[n], out / fake)
                pairs.append(Pair(iset.dataset, col.label, image, real_files[image], fake))
    if not pairs:
        raise ValueError(f"{run_dir}: nothing to show: the study needs real test images and at least one successful "
                         "method's colorizations of them (arrays/samples*.npz or cells/*/predictions.npz)")
    return pairs


def make_trials(pairs: Sequence[Pair], n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` trials, the (dataset, method) arms taken in turn (so each gets n / arms trials), each with an image
    of that arm not yet shown in this session where possible, and the real image on a random side."""
    arms: dict[tuple[str, str], list[Pair]] = {}
    for p in pairs:
        arms.setdefault((p.dataset, p.method), []).append(p)
    order = list(arms)
    rng.shuffle(order)
    queues = {k: rng.sample(v, len(v)) for k, v in arms.items()}
    trials = []
    for t in range(n):
        arm = order[t % len(order)]
        if not queues[arm]:
            queues[arm] = rng.sample(arms[arm], len(arms[arm]))
        p = queues[arm].pop()
        real_side = rng.choice(("left", "right"))
        left, right = (p.real_file, p.fake_file) if real_side == "left" else (p.fake_file, p.real_file)
        trials.append({"trial": t, "dataset": p.dataset, "image": p.image, "method": p.method,
                       "real_side": real_side, "left": left, "right": right})
    rng.shuffle(trials)
    for t, trial in enumerate(trials):
        trial["trial"] = t
    return trials


class BadRequest(Exception):
    """A request the study answers with 400 (the message says what is wrong)."""


class StudyServer(ThreadingHTTPServer):
    """The study's HTTP server: its pairs, its sessions and the responses file of one run directory."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], run_dir: str | Path, pairs: Sequence[Pair], trials: int,
                 seconds: float | None = None) -> None:
        if trials < 1:
            raise ValueError(f"--trials must be >= 1, got {trials}")
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"--seconds must be a positive number of seconds, got {seconds}")
        self.run_dir = Path(run_dir).resolve()
        self.images = self.run_dir / "study" / "images"
        self.responses = self.run_dir / "study" / "responses.jsonl"
        self.pairs = list(pairs)
        self.n_trials = trials
        self.seconds = seconds
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.page = _render_page(trials, seconds)
        super().__init__(address, StudyHandler)

    def new_session(self) -> Session:
        participant = secrets.token_hex(8)
        rng = random.Random(secrets.randbits(64))
        session = Session(participant, make_trials(self.pairs, self.n_trials, rng))
        with self.lock:
            self.sessions[participant] = session
        return session

    def record(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check one answer against its session, append it durably, return the acknowledgement."""
        participant = body.get("participant")
        trial = body.get("trial")
        choice = body.get("choice")
        rt = body.get("rt_ms")
        if not isinstance(participant, str) or not isinstance(trial, int) or isinstance(trial, bool):
            raise BadRequest("'participant' (string) and 'trial' (integer) are required")
        if choice not in ("left", "right"):
            raise BadRequest("'choice' must be \"left\" or \"right\"")
        if isinstance(rt, bool) or not isinstance(rt, (int, float)) or not math.isfinite(rt) or not 0 <= rt <= 86_400_000:
            raise BadRequest("'rt_ms' must be the response time in milliseconds (0 to 86400000)")
        with self.lock:
            session = self.sessions.get(participant)
            if session is None:
                raise BadRequest("unknown participant (the server may have restarted): reload the page")
            if not 0 <= trial < len(session.trials):
                raise BadRequest(f"'trial' must be in [0, {len(session.trials) - 1}]")
            spec = session.trials[trial]
            if body.get("image") != spec["image"]:
                raise BadRequest(f"'image' does not match trial {trial}")
            if trial in session.answered:
                raise BadRequest(f"trial {trial} is already answered")
            line = {
                "time": datetime.now(timezone.utc).isoformat(), "participant": participant, "trial": trial,
                "dataset": spec["dataset"], "image": spec["image"], "method": spec["method"],
                "real_side": spec["real_side"], "choice": choice, "chose_real": choice == spec["real_side"],
                "rt_ms": float(rt), "seconds": self.seconds,
            }
            self._append(json.dumps(line, allow_nan=False) + "\n")
            session.answered.add(trial)
            return {"ok": True, "answered": len(session.answered), "trials": len(session.trials)}

    def _append(self, text: str) -> None:
        """Append one line and make it durable (file data, and the directory entry when the file is new)."""
        new = not self.responses.exists()
        self.responses.parent.mkdir(parents=True, exist_ok=True)
        with open(self.responses, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if new and hasattr(os, "O_DIRECTORY"):
            fd = os.open(self.responses.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class StudyHandler(BaseHTTPRequestHandler):
    server: StudyServer
    timeout = 30  # seconds a client may take to send its request (a stalled client must not hold a thread)
    server_version = "colorbench-study"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if os.environ.get("COLORBENCH_STUDY_LOG"):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"ok": False, "error": message})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, self.server.page, "text/html; charset=utf-8")
            return
        if path.startswith("/images/"):
            file = self._image(path[len("/images/"):])
            if file is not None:
                self._send(200, file.read_bytes(), "image/png")
                return
        self._error(404, f"not found: {path}")

    def _image(self, name: str) -> Path | None:
        """The study image called ``name``, or None: only plain hashed names inside ``study/images``."""
        name = unquote(name)
        if not _IMAGE_NAME.match(name):
            return None
        file = (self.server.images / name).resolve()
        if not file.is_relative_to(self.server.images) or not file.is_file():
            return None
        return file

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path not in ("/api/session", "/api/response"):
            self._drain()
            self._error(404, f"not found: {path}")
            return
        try:
            body = self._body()
            if path == "/api/session":
                session = self.server.new_session()
                trials = [{k: t[k] for k in ("trial", "image", "left", "right")} for t in session.trials]
                self._json(200, {"participant": session.participant, "trials": trials,
                                 "seconds": self.server.seconds})
            else:
                self._json(200, self.server.record(body))
        except BadRequest as exc:
            self._error(400, str(exc))
        except OSError as exc:  # the answer could not be written: say so, never acknowledge it
            self._error(500, f"could not save the response: {exc}")

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise BadRequest("a Content-Length header is required")
        n = int(length)
        if n > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise BadRequest(f"request body of {n} bytes is larger than {MAX_BODY}")
        raw = self.rfile.read(n)
        if n == 0 and self.path.startswith("/api/session"):
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise BadRequest("Content-Type must be application/json")
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise BadRequest("body must be a JSON object")
        return obj

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


def _render_page(trials: int, seconds: float | None) -> bytes:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("study.html.j2").render(
        trials=trials, seconds=seconds, js=(TEMPLATES / "study.js").read_text(encoding="utf-8"),
    ).encode("utf-8")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory (made by `colorbench run`)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--methods", type=lambda s: tuple(n.strip() for n in s.split(",") if n.strip()), default=(),
                   help="comma-separated methods to study (default: every successful method with colorizations)")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help=f"trials per participant (default {DEFAULT_TRIALS})")
    p.add_argument("--seconds", type=float, default=None,
                   help="show each pair for this many seconds, then hide it (default: until the participant chooses)")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL,
                   help=f"test images per dataset taken into the study (default {DEFAULT_POOL}, a seeded subset)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image subset (trial order is random per participant)")


def run_study(args: argparse.Namespace) -> int:
    """Prepare the images and serve the study until interrupted (Ctrl-C)."""
    if args.pool < 1:
        raise ValueError(f"--pool must be >= 1, got {args.pool}")
    if args.trials < 1:  # checked before any image is written (StudyServer checks it too)
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    if args.seconds is not None and not (args.seconds > 0 and math.isfinite(args.seconds)):
        raise ValueError(f"--seconds must be a positive number of seconds, got {args.seconds}")
    pairs = prepare(args.run_dir, args.methods, pool=args.pool, seed=args.seed)
    server = StudyServer((args.host, args.port), args.run_dir, pairs, args.trials, args.seconds)
    host, port = server.server_address[:2]
    if not (host.startswith("127.") or host in ("::1", "localhost")):
        print(f"warning: the study listens on {host}: anyone who can reach this machine on port {port} can open it "
              "and add answers", file=sys.stderr)
    arms = sorted({(p.dataset, p.method) for p in pairs})
    print(f"naturalness study of {len(arms)} method(s) on {len({a[0] for a in arms})} dataset(s), "
          f"{len({(p.dataset, p.image) for p in pairs})} images, {args.trials} trials per participant")
    print(f"open http://{host}:{port}/  (responses: {server.responses}; Ctrl-C stops; then `colorbench report "
          f"{args.run_dir}` adds the fooling rates)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m colorbench.study", description=__doc__)
    add_arguments(parser)
    sys.exit(run_study(parser.parse_args()))
