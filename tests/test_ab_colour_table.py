"""The ab histograms' colour table: counting 8-bit images through it gives exactly the float path's counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorbench.metrics import functional as MF
from colorbench.metrics.functional import ab_histograms as AH
from colorbench.metrics.inputs import MetricInputs

RANGE = MF.AB_HISTOGRAM_RANGE


@pytest.fixture
def fresh_tables(tmp_path, monkeypatch):
    """No table in memory, an empty cache folder, the float-path pixel count at 0."""
    monkeypatch.setenv("COLORBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(AH, "_AB_TABLES", {})
    monkeypatch.setattr(AH, "_float_path_8bit_pixels", 0)
    return tmp_path


def _eight_bit_images(seed: int = 0) -> torch.Tensor:
    """Random 8-bit images plus every grey, primaries and the colours next to bin edges of a."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8)
    levels = torch.arange(256, dtype=torch.uint8)
    x[0, :, :8, :] = levels.view(1, 8, 32)  # the 256 greys
    x[1, 0, :8, :] = levels.view(8, 32)  # reds over a mid green and blue
    x[1, 1:, :8, :] = 128
    return x


def test_table_is_not_built_for_a_short_evaluation(fresh_tables):
    x = _eight_bit_images()
    inputs = MetricInputs(x.float() / 255, x.float() / 255, eight_bit={"pred": x, "target": x})
    counts = inputs.ab_counts("pred", 256, RANGE)
    assert torch.equal(counts, MF.ab_counts_unchecked(x.float() / 255, 256, RANGE))
    assert AH._AB_TABLES == {} and not list(fresh_tables.rglob("*.npy"))  # below AB_TABLE_AFTER_PIXELS


def test_table_counts_equal_the_float_path_and_are_stored(fresh_tables, monkeypatch):
    monkeypatch.setattr(AH, "AB_TABLE_AFTER_PIXELS", 1)  # build at once
    x = _eight_bit_images(1)
    real = _eight_bit_images(2)
    inputs = MetricInputs(x.float() / 255, real.float() / 255, eight_bit={"pred": x, "target": real})
    assert torch.equal(inputs.ab_counts("pred", 256, RANGE), MF.ab_counts_unchecked(x.float() / 255, 256, RANGE))
    assert torch.equal(inputs.ab_joint_counts("target", 256, RANGE),
                       MF.ab_counts_unchecked(real.float() / 255, 256, RANGE, joint=True))
    assert (256, -128.0, 128.0) in AH._AB_TABLES
    stored, = fresh_tables.rglob("*.npy")
    # a new process loads the stored table instead of building one
    monkeypatch.setattr(AH, "_AB_TABLES", {})
    monkeypatch.setattr(AH, "AB_TABLE_AFTER_PIXELS", 2**40)
    assert np.array_equal(MF.ab_colour_table(256, RANGE), np.load(stored))


def test_a_damaged_stored_table_is_not_used(fresh_tables, monkeypatch):
    path = AH._colour_table_path(256, *RANGE)
    path.parent.mkdir(parents=True)
    np.save(path, np.zeros(2**24, dtype=np.uint16))  # right shape and dtype, wrong cells
    assert MF.ab_colour_table(256, RANGE, pixels=10) is None  # not trusted, and not yet worth rebuilding


def test_eight_bit_images_must_match_their_side():
    x = _eight_bit_images()
    with pytest.raises(ValueError, match="eight_bit"):
        MetricInputs(x.float() / 255, x.float() / 255, eight_bit={"pred": x[:2]})


@pytest.mark.slow
def test_table_equals_the_float64_bins_of_every_8bit_colour():
    """All 2**24 colours: the table (built from the float32 path with its near-edge float64 fix) equals the bins
    of the exact float64 Lab values (measured 2026-12-07: 0 of 16,777,216 differ)."""
    table = MF.build_ab_colour_table(256, RANGE)
    step = 2**20
    for start in range(0, 2**24, step):
        rgb = AH._all_colours(start, start + step)[0, :, 0, :].T  # (n, 3)
        bins = AH._float64_bins(rgb, 256, RANGE).long()
        assert np.array_equal(table[start:start + step], (bins[:, 0] * 256 + bins[:, 1]).numpy()), start
