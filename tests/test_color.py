"""colorbench.core.color against scikit-image (rgb2lab / lab2rgb) and PIL (BT.601 grey).

Tolerances (measured on this machine, then given a margin):
* float64: Lab within 1e-9 of skimage (measured 1.2e-13), RGB within 1e-9 (measured 5e-15).
* float32: Lab within 2e-4 (L, a, b are on a 0-100 scale; measured 5.6e-5), RGB within 2e-5 (measured 5.2e-6).
"""

import functools
import warnings

import numpy as np
import pytest
import skimage.color
import skimage.data
import torch
from PIL import Image

from colorbench.core.grey import Grey
from colorbench.core import color

TOL = {torch.float64: (1e-9, 1e-9), torch.float32: (2e-4, 2e-5)}


def _photo_and_random() -> list[np.ndarray]:
    photo = skimage.data.astronaut()[::8, ::8] / 255.0  # a real photo, 64x64
    rand = np.random.default_rng(0).random((24, 24, 3))  # every corner of the cube, incl. saturated colours
    return [photo, rand]


def _chw(arr: np.ndarray, dtype) -> torch.Tensor:
    return torch.tensor(arr.transpose(2, 0, 1).copy(), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rgb_to_lab_matches_skimage(dtype):
    lab_tol, _ = TOL[dtype]
    for arr in _photo_and_random():
        ours = color.rgb_to_lab(_chw(arr, dtype)).double().numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(ours, skimage.color.rgb2lab(arr), atol=lab_tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lab_to_rgb_matches_skimage(dtype):
    _, rgb_tol = TOL[dtype]
    rng = np.random.default_rng(1)
    # real Lab values, and a box of Lab values many of which are out of the sRGB gamut (clipped by both)
    box = np.stack([rng.uniform(0, 100, (20, 20)), rng.uniform(-100, 100, (20, 20)), rng.uniform(-100, 100, (20, 20))], -1)
    for lab in [skimage.color.rgb2lab(a) for a in _photo_and_random()] + [box]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skimage warns when it clips negative z values, as we do
            ref = skimage.color.lab2rgb(lab)
        ours = color.lab_to_rgb(_chw(lab, dtype)).double().numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(ours, ref, atol=rgb_tol, rtol=0)


def test_batched_shapes_and_round_trip():
    x = torch.rand(2, 4, 3, 8, 8, dtype=torch.float64)  # extra leading dims are batch dims
    lab = color.rgb_to_lab(x)
    assert lab.shape == x.shape
    torch.testing.assert_close(color.lab_to_rgb(lab), x, atol=1e-9, rtol=0)


def test_bt601_grey_matches_pil():
    u8 = skimage.data.astronaut()
    pil = np.asarray(Image.fromarray(u8).convert("L"), dtype=np.float64)
    ours = color.rgb_to_grey(_chw(u8 / 255.0, torch.float64), Grey.BT601)[0].numpy() * 255
    # PIL rounds its integer luma to the nearest integer: at most 0.5 grey levels apart
    assert np.abs(ours - pil).max() <= 0.5 + 1e-9


def test_bt601_weights_and_cie_l():
    x = torch.rand(3, 3, 5, 5, dtype=torch.float64)
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(color.rgb_to_grey(x, "bt601")[:, 0], expected)
    torch.testing.assert_close(color.rgb_to_grey(x, "cie-l"), color.rgb_to_lab(x)[:, :1] / 100)


@pytest.mark.parametrize("convention", color.GREY_CONVENTIONS)
def test_grey_to_lightness_is_the_L_of_the_grey(convention):
    rgb = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    gray = color.rgb_to_grey(rgb, convention)
    L = color.grey_to_lightness(gray, convention)
    if convention == "cie-l":  # L* of the colour image itself
        torch.testing.assert_close(L, color.rgb_to_lab(rgb)[:, :1])
    else:  # L* of the neutral colour (g, g, g), by skimage
        ref = skimage.color.rgb2lab(np.repeat(gray[0].numpy().transpose(1, 2, 0), 3, axis=2))[..., 0]
        np.testing.assert_allclose(L[0, 0].numpy(), ref, atol=1e-9)
    # zero ab on top of that L gives back (almost) the same grey. Not exactly: skimage's D65 white
    # (0.95047, 1, 1.08883) differs in the 5th digit from the row sums of its sRGB->XYZ matrix, so a neutral
    # sRGB grey has |a*|, |b*| ~ 1e-3 (measured difference after the round trip: 2.1e-6).
    back = color.grey_ab_to_rgb(gray, torch.zeros(2, 2, 6, 6, dtype=torch.float64), convention)
    torch.testing.assert_close(color.rgb_to_grey(back, convention), gray, atol=1e-5, rtol=0)


def test_differentiable():
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    color.rgb_to_lab(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (checked on a GPU machine when one is lent)")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(color.rgb_to_lab(x.cuda()).cpu(), color.rgb_to_lab(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "fn, bad, match",
    [
        (color.rgb_to_lab, torch.rand(1, 4, 4, 4), r"\(\.\.\., 3, H, W\)"),
        (color.rgb_to_lab, torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "floating-point"),
        (functools.partial(color.grey_to_lightness, convention=Grey.BT601), torch.rand(1, 3, 4, 4), r"\(\.\.\., 1, H, W\)"),
        (color.rgb_to_lab, np.zeros((3, 4, 4)), "torch.Tensor"),
    ],
)
def test_bad_input_errors(fn, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fn(bad)


def test_unknown_convention():
    with pytest.raises(ValueError, match="unknown grey convention"):
        color.rgb_to_grey(torch.rand(1, 3, 2, 2), "luma709")
