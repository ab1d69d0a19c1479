"""The Frechet distance between two Gaussians (FID's formula)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def frechet_distance(mu1: Tensor | np.ndarray, sigma1: Tensor | np.ndarray, mu2: Tensor | np.ndarray,
                     sigma2: Tensor | np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): |mu1 - mu2|^2 + tr(s1 + s2 - 2 sqrtm(s1 s2)).

    Computed in float64 from symmetric eigendecompositions: tr sqrtm(s1 s2) = tr sqrtm(r s2 r) with r = s1^(1/2),
    and ``r s2 r`` is symmetric positive semi-definite, so its square root's trace is the sum of the square roots
    of its (clamped non-negative) eigenvalues. This is the same quantity pytorch-fid gets from
    ``scipy.linalg.sqrtm(s1 @ s2)``, without its failure mode on the singular covariances of small sets (fewer
    images than feature dimensions); the tests compare both.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mean/covariance shapes do not fit: {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    # torch's LAPACK calls: measured 2-3x faster than numpy's eigh for 2048 x 2048 on this project's CPUs
    t1, t2 = torch.from_numpy(s1), torch.from_numpy(s2)
    w, v = torch.linalg.eigh((t1 + t1.T) / 2)
    root1 = (v * w.clamp_min(0.0).sqrt()) @ v.T
    middle = root1 @ ((t2 + t2.T) / 2) @ root1
    tr_covmean = float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0.0).sqrt().sum())
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
