"""Peak memory, wall and CPU per image of ``colorbench evaluate`` and ``colorbench run`` at N images (issue 22).

Builds, once per N, a folder of N distinct 256x256 JPEGs cut from colour photographs (the built-in photos'
sources by default, or any folder of photos with ``--photos``: a seeded random crop of 40-100 % of the short
side, a random flip, resized to 256x256) and a folder of "colorizations" of them (each image partly desaturated
and tinted: a stand-in for a method's output, so every metric has something to measure). Then runs each command
under ``/usr/bin/time -v`` and prints (and appends to ``--csv``) its peak RSS, wall and CPU seconds per image, with
the load average, since the machine may be shared::

    python benchmarks/data_path_scale.py --n 2000 10000 --work /tmp/cbscale --commands evaluate run

``run`` trains ``unet-l1`` (quick preset, 1 epoch) on the folder as an ``image-folder`` dataset (80/20 split) at
256x256 and evaluates it; ``evaluate`` scores the colorization folder against the real one with the default
metrics, twice by default (``--passes``): a first pass with an empty cache folder (``COLORBENCH_CACHE_DIR``; the
structure references and the ab histograms' colour table are computed and stored) and a second pass that finds
them. Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _photos(folder: str | None) -> list[np.ndarray]:
    if folder:
        paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    else:
        from colorbench.datasets.builtin import DEFAULT_PHOTOS, PHOTO_SOURCES

        paths = [PHOTO_SOURCES[n].locate() for n in DEFAULT_PHOTOS]
    out = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    if not out:
        raise SystemExit(f"no photos found in {folder}")
    return out


def _image_name(i: int, names: str) -> str:
    return f"ILSVRC2012_val_{i + 1:08d}.JPEG" if names == "imagenet-val" else f"img{i:06d}.jpg"


def _build_one(i: int, real: Path, pred: Path, photos: list[np.ndarray], size: int, names: str) -> None:
    rng = np.random.default_rng(i)
    src = photos[i % len(photos)]
    h, w = src.shape[:2]
    side = int(min(h, w) * rng.uniform(0.4, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(src[y:y + side, x:x + side]).resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    name = _image_name(i, names)
    # ImageNet's validation folder is flat; the default layout has a class folder per photo (image-folder)
    cls = real if names == "imagenet-val" else real / f"c{i % len(photos)}"
    crop.save(cls / name, quality=92, format="JPEG")
    a = np.asarray(crop, dtype=np.float32)
    grey = a.mean(axis=2, keepdims=True)
    tint = np.array([1.05, 1.0, 0.9], np.float32) * rng.uniform(0.9, 1.1)
    colorized = np.clip(grey + (a - grey) * rng.uniform(0.2, 0.8), 0, 255) * tint
    Image.fromarray(np.clip(colorized, 0, 255).astype(np.uint8)).save(pred / name, quality=92, format="JPEG")


def _build_range(args: tuple) -> None:
    start, stop, real, pred, photos, size, names = args
    for i in range(start, stop):
        _build_one(i, real, pred, photos, size, names)


def build_folders(n: int, work: Path, photos: list[np.ndarray], size: int = 256, names: str = "default",
                  procs: int = 1) -> tuple[Path, Path]:
    """``work/real-N/c<k>/img<i>.jpg`` and ``work/pred-N/img<i>.jpg`` (reused when complete).

    With ``names="imagenet-val"`` both folders are flat and the files are named as ImageNet's validation images
    (``ILSVRC2012_val_00000001.JPEG`` ...), so that ``--protocol ddcolor-imagenet-val50k`` finds its test list.
    """
    suffix = "" if names == "default" else f"-{names}"
    real, pred = work / f"real-{n}{suffix}", work / f"pred-{n}{suffix}"
    done = real / ".complete"
    if done.is_file():
        return real, pred
    pred.mkdir(parents=True, exist_ok=True)
    real.mkdir(parents=True, exist_ok=True)
    if names != "imagenet-val":
        for k in range(min(n, len(photos))):
            (real / f"c{k}").mkdir(exist_ok=True)
    step = -(-n // max(1, procs))
    jobs = [(s, min(n, s + step), real, pred, photos, size, names) for s in range(0, n, step)]
    if procs > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(procs) as pool:
            pool.map(_build_range, jobs)
    else:
        for job in jobs:
            _build_range(job)
    done.write_text(str(n))
    return real, pred


def corrupt_files(real: Path, k: int) -> list[Path]:
    """Truncate ``k`` images of ``real`` to half their bytes (the same ones on every call; done once, a marker file
    ``.corrupt-K`` says so), so that ``run --skip-corrupt`` has files to skip."""
    files = sorted(real.rglob("*.jpg")) or sorted(real.rglob("*.JPEG"))
    chosen = files[len(files) // 2: len(files) // 2 + k]
    marker = real / f".corrupt-{k}"
    if not marker.is_file():
        for f in chosen:
            data = f.read_bytes()
            f.write_bytes(data[: len(data) // 2])
        marker.write_text("\n".join(str(f) for f in chosen))
    return chosen


def timed(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``; its peak RSS (bytes), wall and CPU seconds."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([0-9.]+)", text).group(1))  # type: ignore[union-attr]

    return {"peak_rss_bytes": field("Maximum resident set size (kbytes)") * 1024, "wall_s": wall,
            "cpu_s": field("User time (seconds)") + field("System time (seconds)")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[2000, 10000, 50000])
    p.add_argument("--work", required=True, help="folder for the image folders, runs and logs")
    p.add_argument("--photos", default=None, help="a folder of photos to cut from (default: the built-in photos)")
    p.add_argument("--commands", nargs="+", default=["evaluate", "run"], choices=["evaluate", "run"])
    p.add_argument("--csv", default=None, help="append the rows to this CSV")
    p.add_argument("--extra", default="", help="extra arguments for the commands (one string), e.g. "
                                                "'--skip-corrupt --dataset-option cache_shard_bytes=268435456'")
    p.add_argument("--corrupt", type=int, default=0, help="truncate this many images of each real folder (once; "
                                                          "pass --extra --skip-corrupt to run over them)")
    p.add_argument("--names", default="default", choices=["default", "imagenet-val"],
                   help="file names: img<i>.jpg in class folders, or ImageNet validation names in a flat folder "
                        "(for --extra '--protocol ddcolor-imagenet-val50k')")
    p.add_argument("--build-procs", type=int, default=1, help="processes that build the folders")
    p.add_argument("--passes", nargs="+", default=["first", "cached"], choices=["first", "cached"],
                   help="evaluate passes: 'first' with an empty cache folder (structure references and the ab "
                        "colour table computed), 'cached' again with that cache (what a repeated evaluate costs)")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    photos = _photos(args.photos)
    exe = str(Path(sys.executable).with_name("colorbench"))
    rows = []
    for n in args.n:
        t0 = time.perf_counter()
        real, pred = build_folders(n, work, photos, names=args.names, procs=args.build_procs)
        print(f"N={n}: folders ready in {time.perf_counter() - t0:.0f} s", flush=True)
        if args.corrupt:
            print(f"N={n}: truncated {[str(f) for f in corrupt_files(real, args.corrupt)]}", flush=True)
        cache = work / f"cache-{n}-{int(time.time())}"  # empty: the first evaluate pass fills it
        jobs = [(c, p) for c in args.commands for p in (args.passes if c == "evaluate" else ["first"])]
        for command, pass_ in jobs:
            out = work / f"{command}-{n}-{args.names}-{pass_}-{int(time.time())}"
            if command == "evaluate":
                cmd = [exe, "evaluate", "--pred", str(pred), "--target", str(real), "--name", "bench", "--out",
                       str(out), *args.extra.split()]
                images = n
            else:
                cmd = [exe, "run", "--methods", "unet-l1", "--dataset", "image-folder", "--data-root", str(real),
                       "--image-size", "256", "--epochs", "1", "--no-progress", "--out", str(out), *args.extra.split()]
                images = n  # 80 % trained once, 20 % evaluated
            load_before = os.getloadavg()
            m = timed(cmd, work / f"{out.name}.log", env={"COLORBENCH_CACHE_DIR": str(cache)})
            row = {"command": command, "pass": pass_, "n": n, "extra": args.extra, **m,
                   "cpu_ms_per_image": 1000 * m["cpu_s"] / images,
                   "wall_ms_per_image": 1000 * m["wall_s"] / images, "load_before": round(load_before[0], 2),
                   "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
            rows.append(row)
            print(f"{command} ({pass_} pass) N={n}: peak {m['peak_rss_bytes'] / 2**30:.2f} GiB, wall {m['wall_s']:.0f} s, "
                  f"CPU {m['cpu_s']:.0f} s ({row['cpu_ms_per_image']:.1f} ms/image), load {row['load_before']} -> "
                  f"{row['load_after']}", flush=True)
            if args.csv:
                new = not Path(args.csv).is_file()
                with open(args.csv, "a", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        w.writeheader()
                    w.writerow(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
