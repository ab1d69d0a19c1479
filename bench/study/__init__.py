"""``colorbench study RUN``: human judgements of a run's colorizations, served from its run directory.

Two kinds of study (``--kind``):

* ``naturalness`` (default): a two-alternative forced choice between a real test image and one method's
  colorization of it, "which has the real colours?" (Zhang et al., ECCV 2016, §3.1, showed each pair for one
  second: ``--seconds 1``). ``colorbench report RUN`` adds each method's fooling rate with its Wilson interval.
* ``pairwise``: two methods' colorizations of the same grey image, "which looks more natural?". The report adds
  Bradley–Terry scores with bootstrap intervals, the win matrix, and how well each metric agrees with people.

Both can mix in attention checks (``--attention-checks``: the real image against an obviously wrong
colorization); participants who fail them are left out of the analysis and counted. The pieces:
:mod:`~colorbench.study.stimuli` (images and composites), :mod:`~colorbench.study.sessions` (trials, answers,
files) and :mod:`~colorbench.study.server` (HTTP).
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import datetime, timezone

from colorbench.study.sessions import DEFAULT_EXPIRY_S, DEFAULT_TRIALS, KINDS, StudyState
from colorbench.study.stimuli import DEFAULT_DITHER, DEFAULT_POOL, load_pool

#: Attention checks per participant when ``--attention-checks`` is not given.
DEFAULT_ATTENTION = {"naturalness": 0, "pairwise": 4}

__all__ = ["add_arguments", "run_study", "StudyState", "load_pool"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory (made by `colorbench run`)")
    p.add_argument("--kind", choices=KINDS, default="naturalness",
                   help="naturalness: real vs one colorization, 'which is real?'; pairwise: two methods' "
                        "colorizations, 'which looks more natural?' (default naturalness)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a further Host name participants may type (repeatable; the bound address and this "
                        "machine's names and addresses are always allowed)")
    p.add_argument("--methods", type=lambda s: tuple(n.strip() for n in s.split(",") if n.strip()), default=(),
                   help="comma-separated methods to study (default: every successful method with colorizations)")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help=f"trials per participant, attention checks not counted (default {DEFAULT_TRIALS})")
    p.add_argument("--attention-checks", type=int, default=None, metavar="N",
                   help="attention checks per participant, mixed in at random (default: "
                        + ", ".join(f"{v} for {k}" for k, v in DEFAULT_ATTENTION.items()) + ")")
    p.add_argument("--seconds", type=float, default=None,
                   help="show each pair for this many seconds, then hide it (default: until the participant chooses)")
    p.add_argument("--pool", type=int, default=DEFAULT_POOL,
                   help=f"test images per dataset taken into the study (default {DEFAULT_POOL}, a seeded subset)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the image subset (trial order is random per participant)")
    p.add_argument("--session-hours", type=float, default=DEFAULT_EXPIRY_S / 3600,
                   help=f"a session unused this long expires (default {DEFAULT_EXPIRY_S / 3600:g}; its answers stay)")
    p.add_argument("--dither", type=int, default=DEFAULT_DITHER,
                   help=f"per-trial noise of ±N grey levels on both sides, so no image repeats byte for byte "
                        f"(default {DEFAULT_DITHER}; 0 turns it off)")


def run_study(args: argparse.Namespace) -> int:
    """Refuse if a server already serves the run; else load the images, restore the sessions and serve until Ctrl-C.

    Nothing of the run directory is written before the server lock is ours (then only ``study/server.lock``
    and, as participants answer, the append-only ``study/*.jsonl`` files).
    """
    from colorbench.results.rundir import RunDir
    from colorbench.study.server import ServerLock, StudyServer

    for name, value, low in (("--trials", args.trials, 1), ("--pool", args.pool, 1), ("--dither", args.dither, 0)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if args.seconds is not None and not (args.seconds > 0 and math.isfinite(args.seconds)):
        raise ValueError(f"--seconds must be a positive number of seconds, got {args.seconds}")
    if not (args.session_hours > 0 and math.isfinite(args.session_hours)):
        raise ValueError(f"--session-hours must be a positive number of hours, got {args.session_hours}")
    attention = DEFAULT_ATTENTION[args.kind] if args.attention_checks is None else args.attention_checks
    if attention < 0:
        raise ValueError(f"--attention-checks must be >= 0, got {attention}")
    run = RunDir(args.run_dir)  # not a run directory -> NotARunDirectory naming the fix, before anything is made
    lock = ServerLock(run.path)  # a running server -> StudyAlreadyRunning naming it; its files stay untouched
    try:
        pool = load_pool(run.path, args.methods, pool=args.pool, seed=args.seed)
        state = StudyState(run.path, pool, kind=args.kind, n_trials=args.trials, n_attention=attention,
                           seconds=args.seconds, expiry_s=args.session_hours * 3600, dither=args.dither)
        state.restore()
        server = StudyServer(state, args.host, args.port, allow_hosts=args.allow_host)
        host, port = server.server_address
        lock.announce(url=server.url, host=host, port=port, kind=args.kind,
                      started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            print(f"warning: the study listens on {host}: anyone who can reach this machine on port {port} can open "
                  f"it and add answers. Host names accepted: {', '.join(server.allowed_hosts)}", file=sys.stderr)
        arms = pool.arms()
        print(f"{args.kind} study of {len({m for _, m in arms})} method(s) on {len({d for d, _ in arms})} dataset(s), "
              f"{len(pool.real)} images, {args.trials} trials + {attention} attention checks per participant"
              + (f"; {state.restored} session(s) restored" if state.restored else "")
              + (f"; {state.stale} earlier session(s) not resumed (another --kind, or images not in this pool)"
                 if state.stale else ""))
        print(f"open {' or '.join(server.participant_urls())}  (answers: {state.answers_file()}; Ctrl-C stops; then "
              f"`colorbench report {args.run_dir}` adds the results)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:  # uvicorn finished the requests in flight, then passed Ctrl-C on
            pass
    finally:
        lock.release()
    return 0

