"""``colorbench weights list | fetch [NAME...] | verify [NAME...]``: the pretrained weights files
(:mod:`colorbench.core.weights`)."""

from __future__ import annotations

import argparse
import sys

from colorbench.core.registry import UnknownNameError
from colorbench.core.weights import WEIGHTS, FetchError, fetch, get, status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``colorbench weights list | fetch [NAME...] | verify [NAME...]``."""
    parser.add_argument("action", choices=("list", "fetch", "verify"))
    parser.add_argument("names", nargs="*", metavar="NAME", help="weights names (default: all)")
    parser.add_argument("--dir", default=None,
                        help="destination directory (default: torch hub's checkpoints directory, where the "
                             "metrics and methods look; $TORCH_HOME moves it)")
    parser.add_argument("--force", action="store_true", help="fetch: download even if the file is there")
    parser.add_argument("--timeout", type=float, default=20.0, help="fetch: network timeout in seconds")
    parser.add_argument("--no-progress", action="store_true", help="fetch: no progress bar")


def run_weights(args: argparse.Namespace) -> int:
    """Exit status: 0 on success; 1 if a fetch failed, or verify found a wrong hash or a named file missing."""
    try:
        entries = [get(n) for n in args.names] if args.names else list(WEIGHTS.values())
    except UnknownNameError as err:
        print(f"colorbench weights: error: {err}", file=sys.stderr)
        return 2
    if args.action == "list":
        for e in entries:
            h = e.sha256 if e.full_hash else f"{e.sha256} (prefix only)"
            print(f"{e.name:<18} {status(e, args.dir):<8} {e.file_name}\n{'':<18} url:  {e.url}\n"
                  f"{'':<18} dest: {e.path(args.dir)}\n{'':<18} sha256: {h}\n{'':<18} used by: {', '.join(e.used_by)}")
        return 0
    if args.action == "verify":
        bad = 0
        for e in entries:
            state = status(e, args.dir, hash_files=True)
            print(f"{e.name:<18} {state:<8} {e.path(args.dir)}")
            if state == "BAD HASH" or (state == "missing" and args.names):
                bad += 1
        return 1 if bad else 0
    try:
        fetch([e.name for e in entries if e.kind == "download" or args.names], args.dir,
              progress=not args.no_progress, force=args.force, timeout=args.timeout)
    except FetchError as err:
        print(f"colorbench weights fetch: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # not a failed download: the user stopped it (the partial file is already removed)
        print("colorbench weights fetch: interrupted (Ctrl-C); nothing was installed, the partial file was removed",
              file=sys.stderr)
        return 130
    return 0
