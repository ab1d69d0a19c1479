"""Issue #11, low items of metrics.functional: one reduction convention for mse/psnr/ssim (per-image by
default), a clear error for SSIM on tensors that require grad, range errors that print enough digits."""

import pytest
import torch

from colorbench.metrics import functional as MF


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 16, 16, generator=g), torch.rand(3, 3, 16, 16, generator=g)


@pytest.mark.parametrize("fn", [MF.mse, MF.psnr, MF.ssim])
def test_per_image_by_default_and_the_same_mean_reduction(fn, pair):
    pred, target = pair
    per_image = fn(pred, target)
    assert per_image.shape == (3,) and per_image.dtype == torch.float64  # psnr used to return the mean
    mean = fn(pred, target, reduction="per_image_mean")
    assert mean.shape == () and float(mean) == pytest.approx(float(per_image.mean()), rel=1e-12)
    with pytest.raises(ValueError, match="reduction 'sum'"):
        fn(pred, target, reduction="sum")


def test_psnr_global_reduction_stays(pair):
    pred, target = pair
    pooled = MF.mse(pred, target).mean()
    assert float(MF.psnr(pred, target, reduction="global")) == pytest.approx(float(10 * torch.log10(255**2 / pooled)))


def test_ssim_on_a_tensor_that_requires_grad_says_what_to_do(pair):
    pred, target = pair
    with pytest.raises(ValueError, match=r"ssim: pred requires grad.*not differentiable.*pred\.detach\(\)"):
        MF.ssim(pred.clone().requires_grad_(True), target)
    assert MF.ssim(pred.clone().requires_grad_(True).detach(), target).shape == (3,)


def test_out_of_range_values_are_printed_with_every_digit(pair):
    pred, target = pair
    pred = pred.clone()
    pred[0, 0, 0, 0] = 1 + 1e-6  # float32: 1.00000095...
    with pytest.raises(ValueError, match=r"max 1\.0000009\d+"):  # was "got min 0 and max 1"
        MF.mse(pred, target)
