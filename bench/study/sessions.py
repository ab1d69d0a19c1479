"""A study's participants: their trials, revealed one at a time, and their answers, durable on disk.

Files under ``RUN/study/`` (each one JSON object a line, appended, flushed and fsynced before the server answers,
so nothing acknowledged is lost when the server is killed):

* ``sessions.jsonl``: one line per session as it is created (participant id, kind, every trial with its random
  image token and the sides); a restarted server reads it back, so participants go on where they were;
* ``responses.jsonl``: the answers of naturalness (real vs colorized) studies;
* ``preferences.jsonl``: the answers of pairwise preference studies.

The page learns only what it must: the number of trials, then one trial at a time (its index and an image URL
made of a fresh random token), the next one only once the current one is answered. Which side is real, which
method is where, the dataset and the image id stay on the server.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from colorbench.study.stimuli import ATTENTION_METHOD, DEFAULT_DITHER, Pool, composite_png, wrong_colorization

KINDS = ("naturalness", "pairwise")
#: Where each kind's answers go, relative to the run directory.
ANSWER_FILES = {"naturalness": Path("study") / "responses.jsonl", "pairwise": Path("study") / "preferences.jsonl"}
SESSIONS_FILE = Path("study") / "sessions.jsonl"
DEFAULT_TRIALS = 40
#: A session unused for this long is dropped from memory (its answers stay on disk); the page then starts anew.
DEFAULT_EXPIRY_S = 6 * 3600.0


class BadRequest(Exception):
    """A request the study answers with 4xx (the message says what is wrong)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    participant: str
    kind: str
    created: float  # epoch seconds
    seconds: float | None
    trials: list[dict[str, Any]]
    answered: int = 0  # trials are answered in order: 0..answered-1 are done
    last_seen: float = 0.0

    def to_line(self) -> dict[str, Any]:
        return {"participant": self.participant, "kind": self.kind, "created": self.created, "seconds": self.seconds,
                "trials": self.trials}


def _pick(queue: list[str], used: set[str], rng: random.Random, refill: list[str]) -> str:
    """An image from ``queue`` not yet used in this session when one is left (the queue refills from ``refill``)."""
    for _ in range(2):
        for k in range(len(queue) - 1, -1, -1):
            if queue[k] not in used:
                return queue.pop(k)
        queue[:] = rng.sample(refill, len(refill))
    return queue.pop()


def make_trials(pool: Pool, kind: str, n: int, n_attention: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` trials taking the arms in turn, plus ``n_attention`` attention checks, in random order.

    Arms: (dataset, method) for naturalness (real against that method), (dataset, method A, method B) for
    pairwise (every two methods that colorized the same image). Each trial takes an image of its arm not shown
    before in this session while one is left (a person who saw the real photo once could recognise it), puts
    the sides in random order and gets a fresh random token (its image URL) and noise seed.

    Raises:
        ValueError: a pairwise study of a pool in which no image has two methods.
    """
    arms: dict[tuple[str, ...], list[str]] = {}
    if kind == "naturalness":
        for d, m in pool.arms():
            arms[(d, m)] = [i for (dd, mm, i) in pool.fakes if dd == d and mm == m]
    else:
        for d in sorted({d for d, _ in pool.arms()}):
            for image in pool.images(d):
                ms = pool.methods_of(d, image)
                for a in range(len(ms)):
                    for b in range(a + 1, len(ms)):
                        arms.setdefault((d, ms[a], ms[b]), []).append(image)
        if not arms:
            raise ValueError("a pairwise study needs at least two methods with colorizations of the same images; "
                             "this run has " + ", ".join(f"{m} on {d}" for d, m in pool.arms()))
    order = sorted(arms)
    rng.shuffle(order)
    queues = {k: rng.sample(sorted(v), len(v)) for k, v in arms.items()}
    used: set[tuple[str, str]] = set()
    trials: list[dict[str, Any]] = []
    for t in range(n):
        arm = order[t % len(order)]
        d = arm[0]
        image = _pick(queues[arm], {i for dd, i in used if dd == d}, rng, sorted(arms[arm]))
        used.add((d, image))
        if kind == "naturalness":
            sides = ["real", arm[1]]
        else:
            sides = [arm[1], arm[2]]
        rng.shuffle(sides)
        trials.append({"dataset": d, "image": image, "left": sides[0], "right": sides[1], "attention": False})
    real_keys = sorted(pool.real)
    fresh = [k for k in real_keys if k not in used] or real_keys
    for _ in range(n_attention):
        d, image = fresh.pop(rng.randrange(len(fresh))) if fresh else rng.choice(real_keys)
        sides = ["real", ATTENTION_METHOD]
        rng.shuffle(sides)
        trials.append({"dataset": d, "image": image, "left": sides[0], "right": sides[1], "attention": True})
    rng.shuffle(trials)
    for k, trial in enumerate(trials):
        trial["trial"] = k
        trial["token"] = secrets.token_hex(16)
        trial["dither_seed"] = secrets.randbits(63)
    return trials


def _fsync_dir(path: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def append_line(path: Path, obj: dict[str, Any]) -> None:
    """Append one JSON line and make it durable (the file's data, and the directory entry of a new file)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        _fsync_dir(path.parent)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a torn or malformed line (a kill mid-write) is skipped."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


@dataclass
class StudyState:
    """The sessions and answer files of one study in one run directory (thread-safe: one lock)."""

    run_dir: Path
    pool: Pool
    kind: str = "naturalness"
    n_trials: int = DEFAULT_TRIALS
    n_attention: int = 0
    seconds: float | None = None
    expiry_s: float = DEFAULT_EXPIRY_S
    dither: int = DEFAULT_DITHER
    sessions: dict[str, Session] = field(default_factory=dict)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # image token -> (participant, trial)
    restored: int = 0  # sessions read back from sessions.jsonl at start
    stale: int = 0  # sessions of another --kind, or whose images this pool lacks (another --methods/--pool/--seed)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown study kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.n_trials < 1:
            raise ValueError(f"--trials must be >= 1, got {self.n_trials}")
        if self.n_attention < 0:
            raise ValueError(f"--attention-checks must be >= 0, got {self.n_attention}")
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"--seconds must be a positive number of seconds, got {self.seconds}")
        if not self.expiry_s > 0:
            raise ValueError(f"--session-hours must be positive, got {self.expiry_s / 3600}")
        self.run_dir = Path(self.run_dir).resolve()
        make_trials(self.pool, self.kind, 1, 0, random.Random(0))  # a pool unfit for this kind fails here
        self._wrong = {k: wrong_colorization(v) for k, v in self.pool.real.items()} if self.n_attention else {}

    # --- files --------------------------------------------------------------------------------------------------
    @property
    def sessions_file(self) -> Path:
        return self.run_dir / SESSIONS_FILE

    def answers_file(self, kind: str | None = None) -> Path:
        return self.run_dir / ANSWER_FILES[kind or self.kind]

    def restore(self, now: float | None = None) -> None:
        """Read back the sessions of earlier runs of the server and how far each got (expired ones are left)."""
        now = time.time() if now is None else now
        answered: dict[str, tuple[int, float]] = {}
        for kind in KINDS:
            for line in read_lines(self.answers_file(kind)):
                p, t = line.get("participant"), line.get("trial")
                if isinstance(p, str) and isinstance(t, int):
                    got, last = answered.get(p, (0, 0.0))
                    answered[p] = (max(got, t + 1), max(last, _epoch(line.get("time"))))
        with self.lock:
            for line in read_lines(self.sessions_file):
                try:
                    s = Session(line["participant"], line["kind"], float(line["created"]), line.get("seconds"),
                                list(line["trials"]))
                except (KeyError, TypeError, ValueError):
                    continue
                s.answered, last = answered.get(s.participant, (0, 0.0))
                s.last_seen = max(s.created, last)
                if now - s.last_seen > self.expiry_s:
                    continue
                if s.kind != self.kind or not all(self._resolves(t) for t in s.trials):
                    self.stale += 1  # another kind of study, or images this pool does not hold
                    continue
                self._add(s)
                self.restored += 1

    def _resolves(self, trial: dict[str, Any]) -> bool:
        d, image = trial.get("dataset"), trial.get("image")
        for who in (trial.get("left"), trial.get("right")):
            if who == "real" or who == ATTENTION_METHOD:
                if (d, image) not in self.pool.real:
                    return False
            elif (d, who, image) not in self.pool.fakes:
                return False
        return True

    def _add(self, s: Session) -> None:
        self.sessions[s.participant] = s
        for t in s.trials:
            self.tokens[t["token"]] = (s.participant, t["trial"])

    def _drop(self, s: Session) -> None:
        self.sessions.pop(s.participant, None)
        for t in s.trials:
            self.tokens.pop(t["token"], None)

    def expire(self, now: float | None = None) -> int:
        """Drop sessions unused for longer than the expiry; returns how many."""
        now = time.time() if now is None else now
        with self.lock:
            old = [s for s in self.sessions.values() if now - s.last_seen > self.expiry_s]
            for s in old:
                self._drop(s)
        return len(old)

    # --- what the page asks for ---------------------------------------------------------------------------------
    def new_session(self) -> Session:
        """A new participant with fresh trials, on disk before it is handed out."""
        self.expire()
        now = time.time()
        s = Session(secrets.token_hex(16), self.kind, now, self.seconds,
                    make_trials(self.pool, self.kind, self.n_trials, self.n_attention,
                                random.Random(secrets.randbits(64))), last_seen=now)
        with self.lock:
            append_line(self.sessions_file, s.to_line())
            self._add(s)
        return s

    def _session(self, participant: Any) -> Session:
        if not isinstance(participant, str):
            raise BadRequest("'participant' (string) is required")
        s = self.sessions.get(participant)
        if s is None:
            raise BadRequest("unknown or expired participant: reload the page to start again", status=410)
        if time.time() - s.last_seen > self.expiry_s:
            self._drop(s)
            raise BadRequest("this session has expired: reload the page to start again", status=410)
        return s

    def public(self, s: Session) -> dict[str, Any]:
        """What the page may know of a session now: its size, progress and only the current trial."""
        out: dict[str, Any] = {"participant": s.participant, "kind": s.kind, "trials": len(s.trials),
                               "answered": s.answered, "seconds": s.seconds}
        if s.answered < len(s.trials):
            t = s.trials[s.answered]
            out["current"] = {"trial": t["trial"], "image": f"/images/{t['token']}.png"}
        return out

    def current(self, participant: Any) -> dict[str, Any]:
        with self.lock:
            return self.public(self._session(participant))

    def image(self, token: str) -> bytes | None:
        """The composite PNG of a revealed trial (its token must be the current or an answered trial's)."""
        with self.lock:
            where = self.tokens.get(token)
            if where is None:
                return None
            s = self.sessions.get(where[0])
            if s is None or where[1] > s.answered:
                return None
            t = s.trials[where[1]]
        left, right = (self._picture(t, who) for who in (t["left"], t["right"]))
        return composite_png(left, right, t["dither_seed"], self.dither)

    def _picture(self, trial: dict[str, Any], who: str):
        if who == ATTENTION_METHOD:
            return self._wrong[(trial["dataset"], trial["image"])]
        return self.pool.side(trial["dataset"], trial["image"], who)

    def record(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check one answer against its session, append it durably, return the acknowledgement and the next trial."""
        trial, choice, rt = body.get("trial"), body.get("choice"), body.get("rt_ms")
        if not isinstance(trial, int) or isinstance(trial, bool):
            raise BadRequest("'trial' (integer) is required")
        if choice not in ("left", "right"):
            raise BadRequest("'choice' must be \"left\" or \"right\"")
        if isinstance(rt, bool) or not isinstance(rt, (int, float)) or not (math.isfinite(rt) and 0 <= rt <= 864e5):
            raise BadRequest("'rt_ms' must be the response time in milliseconds (0 to 86400000)")
        with self.lock:
            s = self._session(body.get("participant"))
            if not 0 <= trial < len(s.trials):
                raise BadRequest(f"'trial' must be in [0, {len(s.trials) - 1}]")
            if trial < s.answered:
                raise BadRequest(f"trial {trial} is already answered", status=409)
            if trial > s.answered:
                raise BadRequest(f"trial {trial} is not shown yet: answer trial {s.answered} first", status=409)
            spec = s.trials[trial]
            if body.get("token") != spec["token"]:
                raise BadRequest(f"'token' does not match trial {trial}")
            line = self._line(s, spec, choice, float(rt))
            append_line(self.answers_file(s.kind), line)
            s.answered += 1
            s.last_seen = time.time()
            return {"ok": True, **self.public(s)}

    def _line(self, s: Session, spec: dict[str, Any], choice: str, rt: float) -> dict[str, Any]:
        chosen = spec[choice]
        other = spec["right" if choice == "left" else "left"]
        line: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(), "kind": s.kind, "participant": s.participant,
            "trial": spec["trial"], "dataset": spec["dataset"], "image": spec["image"],
        }
        if s.kind == "naturalness":
            real_side = "left" if spec["left"] == "real" else "right"
            method = spec["right"] if real_side == "left" else spec["left"]
            line.update(method=method, real_side=real_side, choice=choice, chose_real=choice == real_side)
        else:
            line.update(left=spec["left"], right=spec["right"], choice=choice, chosen=chosen, other=other)
        line.update(attention=spec["attention"], rt_ms=rt, seconds=s.seconds, dither=self.dither)
        if spec["attention"]:
            line["passed"] = chosen == "real"
        return line


def _epoch(iso: Any) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0
