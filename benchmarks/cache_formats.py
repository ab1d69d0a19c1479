"""Bytes on disk and CPU per random read of one decoded image under four storage formats (the measurement behind
the storage choice in ``colorbench/datasets/cache.py``'s docstring).

Decodes the first ``--n`` images of a folder (as the cache does: ``decode_image_info``, 256x256), then reads them in
a seeded random order from: raw uint8 rows of a ``.npy`` file (what the cache keeps); the source JPEGs (decoded and
resized at every read); and a tar of lossless re-encodings (PNG level 1 and 6, lossless WebP) read through an
offset index, as random access into WebDataset shards needs. Prints kB per image and CPU ms per read, with the load
average (the machine may be shared)::

    python benchmarks/cache_formats.py --folder /tmp/cbscale/real-2000 --n 400

Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from colorbench.datasets.imaging import decode_image_info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", required=True, help="a folder of JPEG photos (searched recursively)")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--reads", type=int, default=1000, help="random reads per encoded format")
    args = p.parse_args(argv)
    files = sorted(str(f) for f in Path(args.folder).rglob("*") if f.suffix.lower() in {".jpg", ".jpeg"})[:args.n]
    if not files:
        raise SystemExit(f"no JPEG under {args.folder}")
    work = Path(tempfile.mkdtemp(prefix="cache-formats-"))
    t = time.process_time()
    raw = [decode_image_info(f, "resize-shorter-center-crop", 256, "convert")[0] for f in files]
    decode_ms = 1e3 * (time.process_time() - t) / len(files)
    np.save(work / "raw.npy", np.stack(raw))
    rows = np.load(work / "raw.npy", mmap_mode="r")
    order = np.random.default_rng(0).integers(0, len(files), 4 * args.reads)
    t = time.process_time()
    for s in range(0, len(order), 16):
        np.ascontiguousarray(rows[np.sort(order[s:s + 16])])
    results = {"raw uint8 rows (memory-mapped .npy)": (raw[0].nbytes, 1e3 * (time.process_time() - t) / len(order)),
               "source JPEG, decoded and resized per read": (np.mean([os.path.getsize(f) for f in files]), decode_ms)}
    for fmt, options in (("PNG", {"compress_level": 1}), ("PNG", {"compress_level": 6}),
                         ("WEBP", {"lossless": True, "quality": 0, "method": 0})):
        blobs = []
        for a in raw:
            b = io.BytesIO()
            Image.fromarray(a.transpose(1, 2, 0)).save(b, format=fmt, **options)
            blobs.append(b.getvalue())
        tar = work / "shard.tar"
        with tarfile.open(tar, "w") as tf:
            for i, blob in enumerate(blobs):
                info = tarfile.TarInfo(f"{i:06d}.{fmt.lower()}")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
        with tarfile.open(tar) as tf:
            where = {m.name: (m.offset_data, m.size) for m in tf.getmembers()}
        offsets = [where[f"{i:06d}.{fmt.lower()}"] for i in range(len(blobs))]
        lossless = all(np.array_equal(np.asarray(Image.open(io.BytesIO(blobs[i])).convert("RGB")).transpose(2, 0, 1),
                                      raw[i]) for i in range(len(raw)))
        with open(tar, "rb") as f:
            t = time.process_time()
            for i in order[:args.reads]:
                at, size = offsets[i]
                f.seek(at)
                np.asarray(Image.open(io.BytesIO(f.read(size))).convert("RGB"))
            ms = 1e3 * (time.process_time() - t) / args.reads
        results[f"tar of {fmt} {options} + offset index (lossless: {lossless})"] = (tar.stat().st_size / len(blobs), ms)
    for name, (nbytes, ms) in results.items():
        print(f"{name:75s} {nbytes / 1e3:7.1f} kB/image {ms:7.3f} ms CPU/read")
    print(f"{len(files)} images of {args.folder}; load average {os.getloadavg()}; {os.cpu_count()} cores")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
