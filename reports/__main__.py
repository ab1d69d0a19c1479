"""``python -m colorbench.reports RUN_DIR [RUN_DIR ...]``: (re)write the report of each run directory."""

from __future__ import annotations

import argparse

from colorbench.reports.writer import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.reports", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", help="run directories (each with records/*.json)")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        for key, path in write_report(run_dir).items():
            print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
