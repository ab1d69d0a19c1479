"""colorbench as it was before issue #13 (commit ``BASELINE_COMMIT``), timed in a child process of the same run.

Issue #13 asks that the idle speed stay no worse than before. Timings from another run, day or machine are not
comparable (this box's speed varies by tens of percent from hour to hour), so the benchmarks time the previous
code here, side by side with the current one: :class:`Baseline` extracts that commit with ``git archive`` into a
temporary tree laid out as the installed package (``pyproject.toml`` maps the top-level folders onto the
``colorbench`` namespace), starts one Python process that imports it, and runs one call per request on the
benchmark's tensors and streaming (``workload.py``). The child runs on torch's default threads, as that code
did. pytest-benchmark times each request in the parent, as it times the other implementations; the pipe adds
well under a millisecond to calls of 10 ms and more (the child also returns its own time of the call).

Unavailable (the benchmark is skipped, saying why) outside a git checkout that has the commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

#: The last commit before issue #13's changes (the base of the session that started it).
BASELINE_COMMIT = "06a3a722151482b6ff267830f0eb9465f20c4cc4"
#: pyproject.toml's package-dir of that commit: top-level folder -> subpackage of ``colorbench``.
_LAYOUT = {"bench": "", "methods": "methods", "metrics": "metrics", "datasets": "datasets", "reports": "reports"}

_CHILD = r"""
import json, sys, time
import torch
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[3])  # benchmarks/: workload.py, the same tensors and streaming as the benchmark
import colorbench
assert colorbench.__file__.startswith(sys.argv[1]), colorbench.__file__
from colorbench.metrics import functional as MF
from workload import data, stream
metric_set = sys.argv[2].split(",")

cache = {}
print(json.dumps({"threads": torch.get_num_threads(), "file": colorbench.__file__}), flush=True)
for line in sys.stdin:
    what, size, n = line.split()
    key = (int(size), int(n))
    if key not in cache:
        cache.clear()
        cache[key] = data(*key)
    pred, target = cache[key]
    fn = {"ssim": lambda: MF.ssim(pred, target),
          "psnr": lambda: MF.psnr(pred, target, reduction=None),
          "metric-set": lambda: stream(pred, target, metric_set)}[what]
    t0 = time.perf_counter()
    fn()
    print(time.perf_counter() - t0, flush=True)
"""


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def extract(commit: str, dest: Path) -> Path:
    """The package tree of ``commit`` under ``dest`` (importable with ``dest`` on ``sys.path``)."""
    archive = dest / "src.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(_repo_root()), "archive", commit, *_LAYOUT], stdout=f, check=True,
                       stderr=subprocess.PIPE)
    src = dest / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    pkg = dest / "tree" / "colorbench"
    for folder, sub in _LAYOUT.items():
        (pkg / sub).parent.mkdir(parents=True, exist_ok=True)
        if sub:
            (pkg / sub).symlink_to(src / folder, target_is_directory=True)
        else:
            pkg.mkdir(parents=True, exist_ok=True)
            for item in (src / folder).iterdir():
                (pkg / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return dest / "tree"


class Baseline:
    """The child process running the code of :data:`BASELINE_COMMIT` (a context manager)."""

    def __init__(self, metric_set: tuple[str, ...], commit: str = BASELINE_COMMIT) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="colorbench-baseline-")
        try:
            tree = extract(commit, Path(self._tmp.name))
        except (OSError, subprocess.CalledProcessError) as err:
            self._tmp.cleanup()
            detail = getattr(err, "stderr", b"") or b""
            raise RuntimeError(f"cannot extract commit {commit[:10]} with git: {err} {detail.decode().strip()}") from err
        # torch's default threads, as a user's process (and the code of that commit) ran them
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                 "COLORBENCH_THREADS", "PYTHONPATH")}
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tree), ",".join(metric_set),
                                      str(Path(__file__).resolve().parent)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self.proc.stdout.readline().strip()
        if not self.info:
            self.close()
            raise RuntimeError(f"the baseline process did not start (exit status {self.proc.poll()})")

    def call(self, what: str, size: int, n: int) -> float:
        """Run ``what`` (ssim, psnr or metric-set) once on the benchmark's data; the seconds it took."""
        self.proc.stdin.write(f"{what} {size} {n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the baseline process died (exit status {self.proc.poll()})")
        return float(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._tmp.cleanup()

    def __enter__(self) -> "Baseline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
