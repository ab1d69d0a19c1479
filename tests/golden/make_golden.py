"""Regenerate ``metrics_golden.json``: metric values on fixed inputs, computed by the REFERENCE libraries
(scikit-image, scipy, numpy), not by colorbench. Run: ``python tests/golden/make_golden.py``.

Inputs (no random numbers, so they do not depend on a generator's version): four 32x32 crops of scikit-image's
``astronaut`` and ``chelsea`` photographs as the real set; the "colorized" set is each crop desaturated to 60%
around its BT.601 luma, tinted by (+0.04, -0.02, +0.03) and given a fixed sinusoidal ripple, clipped to [0, 1].
"""

from __future__ import annotations

import datetime
import importlib.metadata as md
import json
from pathlib import Path

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from skimage import color as skcolor
from skimage import data as skdata
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

CROPS = [("astronaut", 40, 180), ("astronaut", 300, 60), ("chelsea", 50, 100), ("chelsea", 200, 250)]
SIZE = 32


def golden_inputs() -> tuple[np.ndarray, np.ndarray]:
    """(colorized, real) as float64 (N, H, W, 3) arrays in [0, 1]."""
    real = np.stack([getattr(skdata, n)()[r : r + SIZE, c : c + SIZE] for n, r, c in CROPS]).astype(np.float64) / 255
    grey = real @ np.array([0.299, 0.587, 0.114])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ripple = 0.03 * np.sin(xx / 3.0 + yy / 5.0)[None, :, :, None]
    fake = grey[..., None] + 0.6 * (real - grey[..., None]) + np.array([0.04, -0.02, 0.03]) + ripple
    return np.clip(fake, 0.0, 1.0), real


def _probs(counts: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    p = counts / counts.sum() + eps
    return p / p.sum()


def _colorfulness(img: np.ndarray) -> float:  # Hasler & Suesstrunk 2003, eq. 3, on 0-255 sRGB
    r, g, b = (img[..., i] * 255 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def reference_values(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    n = len(real)
    gauss = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    out = {
        "mse": np.mean([mean_squared_error(real[i] * 255, fake[i] * 255) for i in range(n)]),
        "psnr": np.mean([peak_signal_noise_ratio(real[i] * 255, fake[i] * 255, data_range=255) for i in range(n)]),
        "psnr_global": peak_signal_noise_ratio(real * 255, fake * 255, data_range=255),
        "ssim": np.mean([structural_similarity(real[i] * 255, fake[i] * 255, data_range=255, channel_axis=-1,
                                               **gauss) for i in range(n)]),
        "ssim_uniform": np.mean([structural_similarity(real[i] * 255, fake[i] * 255, data_range=255,
                                                       channel_axis=-1) for i in range(n)]),
        "sum_abs_diff": np.mean(np.abs(real * 255 - fake * 255).sum(axis=(1, 2, 3))),
        "colorfulness": np.mean([_colorfulness(x) for x in fake]),
        "colorfulness_pooled": _colorfulness(fake.reshape(-1, SIZE, 3)),
    }
    out["delta_colorfulness"] = abs(np.mean([_colorfulness(x) for x in real]) - out["colorfulness"])
    lab_r, lab_f = (skcolor.rgb2lab(x.reshape(-1, SIZE, 3)).reshape(-1, 3) for x in (real, fake))
    for i, ch in ((1, "a"), (2, "b")):
        pr = _probs(np.histogram(lab_r[:, i], bins=256, range=(-128, 128))[0])
        pf = _probs(np.histogram(lab_f[:, i], bins=256, range=(-128, 128))[0])
        out[f"kl_{ch}"] = entropy(pr, pf)
        out[f"js_{ch}"] = jensenshannon(pr, pf) ** 2
    rng2 = [(-128, 128), (-128, 128)]
    pr = _probs(np.histogram2d(lab_r[:, 1], lab_r[:, 2], bins=64, range=rng2)[0].ravel())
    pf = _probs(np.histogram2d(lab_f[:, 1], lab_f[:, 2], bins=64, range=rng2)[0].ravel())
    out["kl_ab"], out["js_ab"] = entropy(pr, pf), jensenshannon(pr, pf) ** 2
    return {k: float(v) for k, v in out.items()}


def main() -> None:
    fake, real = golden_inputs()
    doc = {
        "provenance": {
            "generated_by": "tests/golden/make_golden.py (reference libraries only, not colorbench)",
            "date": datetime.date.today().isoformat(),
            "versions": {d: md.version(d) for d in ("numpy", "scipy", "scikit-image")},
            "inputs": __doc__.split("Inputs", 1)[1].strip(),
            "conventions": "colorbench defaults: 0-255 scale; SSIM gaussian sigma 1.5 population covariance "
                           "(ssim_uniform: skimage defaults); 256 bins of width 1 on [-128, 128] for a and b, "
                           "64x64 for the joint ab histogram; eps 1e-10 then renormalised; natural log; "
                           "KL(real || colorized); colourfulness per-image mean (and pooled)",
        },
        "values": reference_values(fake, real),
    }
    path = Path(__file__).with_name("metrics_golden.json")
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
