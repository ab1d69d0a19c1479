"""``colorbench publish RUN --to RESULTS`` and ``colorbench leaderboard RESULTS --out SITE``."""

from __future__ import annotations

import argparse
import sys

from colorbench.hub.board import DEFAULT_ATOL, DEFAULT_RTOL


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="run directory (colorbench run / evaluate --out)")
    parser.add_argument("--to", required=True, metavar="RESULTS",
                        help="the shared results: a folder (a git repository works) or an fsspec URI "
                             "(memory://..., s3://bucket/path, ...)")
    parser.add_argument("--by", default=None, help="who publishes (default $COLORBENCH_PUBLISHER, else the login name)")
    parser.add_argument("--host", default=None, help="the machine's name shown as provenance (default: hostname)")
    parser.add_argument("--method-meta", default=None, metavar="FILE.json",
                        help="method metadata the cards lack: {method: {licence, code_revision, weights, "
                             "training_data, inference_size, chroma_upsampling}} (e.g. for an evaluate row)")


def run_publish(args: argparse.Namespace, out=None) -> int:
    from colorbench.hub.store import ResultsStore, publish
    from colorbench.hub.submission import build_submissions, publisher_identity, read_method_meta

    out = out or sys.stdout
    meta = read_method_meta(args.method_meta)
    prepared = build_submissions(args.run_dir, meta, publisher_identity(args.by, args.host))
    if not prepared:
        print(f"colorbench: error: {args.run_dir} holds no finished cell to publish", file=sys.stderr)
        return 2
    methods = {p.doc["result"]["cell"]["method"] for p in prepared}
    if set(meta) - methods:  # a misspelt name would otherwise publish without its metadata
        print(f"colorbench: error: {args.method_meta} describes {sorted(set(meta) - methods)}, which {args.run_dir} "
              f"does not hold (its methods: {sorted(methods)}); nothing was published", file=sys.stderr)
        return 2
    store = ResultsStore(args.to)
    report = publish(prepared, store)
    for path in report.written:
        print(f"published  {report.labels[path]}: {store.where(path)}", file=out)
    for path in report.already:
        print(f"unchanged  {report.labels[path]}: already in {store.where(path)}", file=out)
    print(f"{len(report.written)} new submission(s), {len(report.already)} already published, "
          f"{report.blobs_written} new file(s) of per-image values and samples", file=out)
    return 0


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS", help="the shared results folder or fsspec URI")
    parser.add_argument("--out", required=True, metavar="SITE", help="folder of the static site (index.html)")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                        help=f"relative tolerance of one cell's values across machines (default {DEFAULT_RTOL:g})")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"absolute tolerance (default {DEFAULT_ATOL:g})")
    parser.add_argument("--keep-going", action="store_true",
                        help="build the site without unreadable files (listed on it) instead of stopping")


def run_leaderboard(args: argparse.Namespace, out=None) -> int:
    from colorbench.hub.board import build, load
    from colorbench.hub.site import write_site
    from colorbench.hub.store import ResultsStore

    out = out or sys.stdout
    store = ResultsStore(args.results)
    if not store.is_results():
        raise FileNotFoundError(f"{args.results} holds no submissions/ folder: publish a run into it first "
                                "(colorbench publish RUN --to RESULTS)")
    loaded = load(store, strict=not args.keep_going)
    board = build(loaded, rtol=args.rtol, atol=args.atol)
    index = write_site(board, store, args.out)
    for problem in board.problems:
        print(f"left out: {problem}", file=sys.stderr)
    for c in board.conflicts:
        print(f"conflict: {c.text}", file=out)
    print(f"{len(board.subs)} submission(s), {len(board.tables)} table(s), {len(board.methods)} method(s), "
          f"{len(board.conflicts)} conflict(s): {index}", file=out)
    return 0
