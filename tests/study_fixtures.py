"""A run directory for pairwise studies, and simulated participants with known preferences.

:func:`make_preference_run` adds two methods to :func:`html_fixtures.make_run_dir` (four in all, each a
different, recognisable change of the real image), with per-image ``mse`` (↓), ``psnr`` (↑) and ``chroma`` (↑,
the mean distance of a pixel's colour from its grey) so that the metric-agreement table has a metric that
follows the people (mse, psnr: the simulated people prefer what is closer to the real image) and one that does
not (chroma: the over-saturated method has the most).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from html_fixtures import DATASET, IDS, _mv, images, make_run_dir, records

#: True Bradley–Terry log-strengths of the simulated people: closer to the real image is more natural.
TRUE_STRENGTH = {"alpha": 2.0, "beta": 0.7, "gamma": -0.6, "delta": -2.1}


def colorizations() -> dict[str, np.ndarray]:
    """alpha, beta (html_fixtures), gamma (chroma doubled: over-saturated), delta (chroma quartered), uint8."""
    arr = images()
    real = arr["real"].astype(float)
    grey = arr["grey"].astype(float)
    out = {"alpha": arr["alpha"], "beta": arr["beta"]}
    for name, factor in (("gamma", 2.0), ("delta", 0.25)):
        out[name] = np.clip(grey + factor * (real - grey), 0, 255).round().astype(np.uint8)
    return out


def per_image(method: str) -> dict[str, np.ndarray]:
    arr = images()
    pred = colorizations()[method].astype(float)
    err = ((pred - arr["real"].astype(float)) ** 2).mean(axis=(1, 2, 3))
    chroma = np.abs(pred - pred.mean(axis=1, keepdims=True)).mean(axis=(1, 2, 3))
    return {"mse": err, "psnr": 10 * np.log10(255.0 ** 2 / np.maximum(err, 1e-12)), "chroma": chroma}


def make_preference_run(root: Path) -> Path:
    """:func:`html_fixtures.make_run_dir` with gamma and delta added and every method's metrics recomputed."""
    from colorbench.results.rundir import CellEntry, RunDir

    run_dir = make_run_dir(root)
    rd = RunDir(run_dir)
    arr = colorizations()
    for method in TRUE_STRENGTH:
        v = per_image(method)
        rec = records()[0]
        rec.method, rec.samples_file = method, None
        rec.metrics = {"mse": _mv("mse", float(v["mse"].mean()), False),
                       "psnr": _mv("psnr", float(v["psnr"].mean()), True),
                       "chroma": _mv("chroma", float(v["chroma"].mean()), True)}
        entry = CellEntry(key=f"k-{method}", dataset=DATASET["name"], method=method, preset="quick", seed=0)
        rd.write_cell(entry, rec, per_image={"ids": np.asarray(IDS), **v}, predictions=(arr[method], IDS))
    return run_dir


class SimulatedPerson:
    """Recognises each half of a composite by its nearest known picture, then chooses by the Bradley–Terry model."""

    def __init__(self, seed: int, strength: dict[str, float] = TRUE_STRENGTH, attentive: bool = True) -> None:
        self.rng = np.random.default_rng(seed)
        self.strength = strength
        self.attentive = attentive
        arr = images()
        self.known = {"real": arr["real"], **colorizations()}

    def _who(self, half: np.ndarray) -> tuple[str, int]:
        best = (np.inf, "", -1)
        for name, stack in self.known.items():
            d = np.abs(stack.astype(np.int16) - half[None].astype(np.int16)).mean(axis=(1, 2, 3))
            k = int(d.argmin())
            best = min(best, (float(d[k]), name, k))
        return (best[1], best[2]) if best[0] < 3 else ("wrong", -1)  # the attention check's wrong colorization

    def choose(self, png: bytes) -> str:
        from PIL import Image

        img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        w = (img.shape[1] - 8) // 2
        left, right = (np.transpose(h, (2, 0, 1)) for h in (img[:, :w], img[:, w + 8:]))
        (a, _), (b, _) = self._who(left), self._who(right)
        if "wrong" in (a, b) or "real" in (a, b):  # an attention check
            real_left = a == "real" or b == "wrong"
            return "left" if real_left == self.attentive else "right"  # an inattentive person picks the wrong one
        p_left = 1.0 / (1.0 + np.exp(self.strength[b] - self.strength[a]))
        return "left" if self.rng.random() < p_left else "right"
