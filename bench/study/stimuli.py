"""What a study shows: the images of a run directory held in memory, and the one composite PNG of each trial.

Every trial is served as **one** PNG holding both sides (left | grey gap | right), so that no file name, byte
count or load time belongs to one side: the page never learns which half is which before the participant
answers. Each composite gets its own random ±``dither`` noise (the same amount of noise on both halves, drawn
per trial), so the same photo never gives the same bytes twice (an exact-duplicate search across trials or
sessions finds nothing).

Attention checks put a real image against an obviously wrong colorization of it: its CIELAB a*, b* negated
and doubled (complementary, over-saturated hues: a green sky, blue skin), made with scikit-image.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

#: Images of each dataset taken into the study (a seeded subset when the run holds more).
DEFAULT_POOL = 200
#: Grey pixels between the two halves of a composite.
GAP = 8
#: Half-width of the per-trial uniform integer noise added to every pixel of both halves (0 turns it off).
DEFAULT_DITHER = 1
#: The wrong colorization of the attention checks: CIELAB chroma multiplied by this (negative flips the hue).
ATTENTION_AB_FACTOR = -2.0
ATTENTION_METHOD = "attention:inverted_ab"


@dataclass
class Pool:
    """A study's images, keyed as the trials name them.

    Attributes:
        real: (dataset, image id) -> real image, uint8 (3,H,W).
        fakes: (dataset, method label, image id) -> that method's colorization, uint8 (3,H,W).
    """

    real: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    fakes: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)

    def arms(self) -> list[tuple[str, str]]:
        """The (dataset, method label) pairs that have colorizations, sorted."""
        return sorted({(d, m) for d, m, _ in self.fakes})

    def methods_of(self, dataset: str, image: str) -> list[str]:
        return sorted(m for d, m, i in self.fakes if d == dataset and i == image)

    def images(self, dataset: str) -> list[str]:
        return sorted({i for d, _, i in self.fakes if d == dataset})

    def side(self, dataset: str, image: str, who: str) -> np.ndarray:
        """The picture of one side of a trial: ``"real"``, the attention check's wrong colorization, or a method."""
        if who == "real":
            return self.real[(dataset, image)]
        if who == ATTENTION_METHOD:
            return wrong_colorization(self.real[(dataset, image)])
        return self.fakes[(dataset, who, image)]


def load_pool(run_dir: str | Path, methods: Sequence[str] = (), pool: int = DEFAULT_POOL, seed: int = 0) -> Pool:
    """Read the real images and every successful method's colorizations of a seeded subset of them (nothing written).

    Raises:
        FileNotFoundError: ``run_dir`` has no records.
        ValueError: an unknown method in ``methods``, or nothing to show (no real images or no colorizations).
    """
    from colorbench.reports.images import image_sets
    from colorbench.results.rundir import RunDir

    run_dir = Path(run_dir)
    if pool < 1:
        raise ValueError(f"--pool must be >= 1, got {pool}")
    if not RunDir(run_dir).records():  # not a run directory -> NotARunDirectory naming the fix
        raise FileNotFoundError(f"{run_dir} holds no finished cell yet: run `colorbench run --out {run_dir}` first")
    sets = image_sets(run_dir)
    known = {c.method for s in sets for c in s.columns} | {c.label for s in sets for c in s.columns}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown} for this run; it has {sorted(known)}")
    rng = random.Random(seed)
    out = Pool()
    for iset in sets:
        real_ids = [i for i in iset.order if i in iset.real] or sorted(iset.real)
        if not real_ids:
            continue
        chosen = set(rng.sample(real_ids, min(pool, len(real_ids))))
        for col in iset.columns:
            if col.status != "ok" or (methods and col.method not in methods and col.label not in methods):
                continue
            got = col.load_predictions()
            if got is None:
                continue
            arr, ids = got
            for n, image in enumerate(ids):
                if image in chosen and arr[n].shape == iset.real[image].shape:
                    out.real[(iset.dataset, image)] = np.asarray(iset.real[image], dtype=np.uint8)
                    out.fakes[(iset.dataset, col.label, image)] = np.asarray(arr[n], dtype=np.uint8)
    if not out.fakes:
        raise ValueError(f"{run_dir}: nothing to show: the study needs real test images and at least one successful "
                         "method's colorizations of them (arrays/samples*.npz or cells/*/predictions.npz)")
    return out


def wrong_colorization(real: np.ndarray, factor: float = ATTENTION_AB_FACTOR) -> np.ndarray:
    """The attention check's obviously wrong colorization: the real image with CIELAB a*, b* times ``factor``."""
    import warnings

    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(np.transpose(real, (1, 2, 0)).astype(np.float64) / 255.0)
    lab[..., 1:] *= factor
    with warnings.catch_warnings():  # out-of-gamut colours are the point here; lab2rgb clips them and says so
        warnings.simplefilter("ignore", UserWarning)
        rgb = np.clip(lab2rgb(lab) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.transpose(rgb, (2, 0, 1)))


def composite_png(left: np.ndarray, right: np.ndarray, dither_seed: int, dither: int = DEFAULT_DITHER) -> bytes:
    """Both sides of a trial as one PNG: ``left | grey gap | right``, noise of ±``dither`` from ``dither_seed``.

    Args:
        left, right: uint8 (3,H,W) images of the same size.
        dither_seed: seeds the noise (stored with the trial, so a restarted server serves the same bytes).
        dither: half-width of the integer noise added to every pixel of both halves.
    """
    from PIL import Image

    if left.shape != right.shape or left.ndim != 3 or left.shape[0] != 3:
        raise ValueError(f"both sides must be uint8 (3,H,W) of one size, got {left.shape} and {right.shape}")
    _, h, w = left.shape
    canvas = np.full((h, 2 * w + GAP, 3), 128, dtype=np.int16)
    canvas[:, :w] = np.transpose(left, (1, 2, 0))
    canvas[:, w + GAP:] = np.transpose(right, (1, 2, 0))
    if dither:
        noise = np.random.default_rng(dither_seed).integers(-dither, dither + 1, size=canvas.shape, dtype=np.int16)
        canvas[:, :w] += noise[:, :w]
        canvas[:, w + GAP:] += noise[:, w + GAP:]
    buf = io.BytesIO()
    Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
