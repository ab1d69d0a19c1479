"""The ``colorbench`` command line: one verb per module of this floor, looked up lazily.

``colorbench --help`` and ``colorbench status RUN`` import neither torch nor the methods: the verb table below names
each verb's help line and its ``module:function`` entries, and only the verb that is run has its module imported and
its arguments added (``--help`` lists the verbs from the table alone).

Exit status (see :data:`EXIT_STATUS`): 0 success; 1 the command finished and wrote everything, but a requested
method failed (``run``) or a value drifted (``check``); 2 a bad argument or input, found before any work;
3 an output file could not be written (e.g. the disk is full); 141 stdout was closed early (``| head``);
143 a torchrun launch lost a rank or was stopped (``run``; rerunning resumes).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from colorbench.commands.exit import (EXIT_FAILED, EXIT_OK, EXIT_PIPE, EXIT_STATUS, EXIT_USAGE,  # noqa: F401
                                      EXIT_WRITE)


@dataclass(frozen=True)
class Verb:
    """One verb: its help line and where its argument builder and its function live (``"module:attr"``)."""

    help: str
    arguments: str
    run: str
    parser: str | None = None  # "module:attr" of a dict of extra add_parser keywords (epilog, ...)

    def load(self, which: str) -> Any:
        module, attr = getattr(self, which).split(":")
        return getattr(importlib.import_module(module), attr)


_C = "colorbench.commands"
VERBS: dict[str, Verb] = {
    "run": Verb("train, colorize, evaluate and write a report", f"{_C}.run:add_arguments", f"{_C}.run:run",
                parser=f"{_C}.run:PARSER"),
    "list": Verb("list methods, datasets, metrics or presets", f"{_C}.listing:add_list_arguments",
                 f"{_C}.listing:run_list"),
    "describe": Verb("a method's card, preset options and parameter counts", f"{_C}.listing:add_describe_arguments",
                     f"{_C}.listing:run_describe"),
    "report": Verb("(re)write the report of an existing run directory", f"{_C}.report:add_report_arguments",
                   f"{_C}.report:run_report"),
    "check": Verb("compare metric values with a baseline run; exit 1 on drift", f"{_C}.check:add_arguments",
                  f"{_C}.check:run_check"),
    "export": Verb("write a method's colorized test split as PNGs + manifest", f"{_C}.evaluate:add_export_arguments",
                   f"{_C}.evaluate:run_export"),
    "evaluate": Verb("score a folder of colorizations into a run directory", f"{_C}.evaluate:add_evaluate_arguments",
                     f"{_C}.evaluate:run_evaluate"),
    "reproduce": Verb("run a seed paper's table or figure as a recipe (--list)",
                      f"{_C}.reproduce:add_arguments", f"{_C}.reproduce:run_reproduce"),
    "weights": Verb("list, fetch or verify the pretrained weights files", f"{_C}.weights:add_arguments",
                    f"{_C}.weights:run_weights"),
    "status": Verb("cells of a run directory: done, running, failed, pending", f"{_C}.status:add_arguments",
                   f"{_C}.status:run_status"),
    "study": Verb("serve a human study of a run (naturalness or pairwise preference)", "colorbench.study:add_arguments",
                  "colorbench.study:run_study"),
    "publish": Verb("publish a run's results into a shared RESULTS folder or URI",
                    "colorbench.hub.cli:add_publish_arguments", "colorbench.hub.cli:run_publish"),
    "leaderboard": Verb("build the static leaderboard site of RESULTS", "colorbench.hub.cli:add_leaderboard_arguments",
                        "colorbench.hub.cli:run_leaderboard"),
    "cross-domain": Verb("(re)train the cross-domain classifiers of a run made with --cross-domain",
                         f"{_C}.report:add_cross_domain_arguments", f"{_C}.report:run_cross_domain"),
}


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("colorbench")
    except md.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(verbs: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of ``verbs`` only (default: every verb's, which imports every verb module)."""
    p = argparse.ArgumentParser(
        prog="colorbench", description="Train, colorize and evaluate colorization methods.",
        epilog="exit status: " + "; ".join(f"{code} {what}" for code, what in EXIT_STATUS.items()))
    p.add_argument("--version", action="version", version=f"colorbench {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, verb in VERBS.items():
        if verbs is not None and name not in verbs:
            sub.add_parser(name, help=verb.help)
            continue
        extra = dict(verb.load("parser")) if verb.parser else {}
        extra.pop("help", None)
        verb.load("arguments")(sub.add_parser(name, help=verb.help, **extra))
    return p


def _verb_of(argv: Sequence[str]) -> str | None:
    """The verb named in ``argv`` (the first word that is not an option: the top level takes no option values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    from_command_line = argv is None  # the program itself (not a test calling main): see the end
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = _verb_of(argv)
    try:
        parser = build_parser([verb] if verb in VERBS else [])
    except BrokenPipeError:
        return EXIT_PIPE
    args = parser.parse_args(argv)
    from colorbench.core.fsio import WriteError
    from colorbench.core.registry import UnknownNameError
    from colorbench.results.rundir import RunDirLocked

    try:
        if hasattr(args, "plugin"):  # installed entry points and --plugin files/modules, before any method lookup
            from colorbench.engine.plugins import load_plugins

            load_plugins(args.plugin)
        run: Callable[[argparse.Namespace], int] = VERBS[args.command].load("run")
        status = run(args)
        if from_command_line:
            import gc

            # Python's last garbage collections at exit walk every object torch, torchvision and matplotlib
            # created: seconds after the work is done (measured 1-8 s, more when the cores are shared). Frozen
            # objects are skipped; the process ends right after, and the system takes the memory back.
            gc.freeze()
            if "colorbench.engine.executors" in sys.modules:  # a run: its pool's fork server, if any, is done
                sys.modules["colorbench.engine.executors"].stop_fork_server()
        return status
    except BrokenPipeError:  # the reader closed the pipe (`colorbench list presets | head`): stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python would otherwise complain again when flushing at exit
        return EXIT_PIPE
    except WriteError as exc:
        print(f"colorbench: error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except (UnknownNameError, ValueError, FileNotFoundError, RunDirLocked) as exc:
        print(f"colorbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
