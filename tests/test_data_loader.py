"""The training data path: EpochSampler gives today's order, resumes mid-epoch, slices by rank; the loader gives
the same batches with worker processes as in process."""

from __future__ import annotations

import pytest
import torch

from colorbench.datasets.base import ImageSet
from colorbench.engine.data import EpochSampler, make_train_loader, training_batches
from colorbench.engine.spec import RunSpec


def _images(n: int = 23, size: int = 8, masks: bool = True) -> ImageSet:
    g = torch.Generator().manual_seed(1)
    rgb = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    m = torch.randint(0, 3, (n, size, size), dtype=torch.uint8, generator=g) if masks else None
    return ImageSet(rgb=rgb, labels=torch.arange(n) % 3, ids=[f"im{i}" for i in range(n)], class_names=["a", "b", "c"],
                    masks=m, mask_class_names=["x", "y", "z"] if masks else None)


def _same(a, b) -> None:
    assert a.ids == b.ids and a.paired == b.paired and a.rgb_ids == b.rgb_ids
    for key in ("gray", "rgb", "labels", "masks"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None and y is None) or torch.equal(x, y), key


@pytest.mark.parametrize("paired,protocol", [(True, "disjoint"), (False, "disjoint"), (False, "shuffled")])
def test_sampler_and_loader_give_the_batches_of_training_batches_epoch_after_epoch(paired, protocol):
    train = _images()
    spec = RunSpec(methods=("gray",), dataset="shapes", unpaired_protocol=protocol, progress=False)
    order = torch.Generator().manual_seed(5)
    sampler = EpochSampler(len(train), paired=paired, batch_size=4, seed=5, unpaired_protocol=protocol)
    loader = make_train_loader(train, sampler, workers=0, device="cpu", grey_convention=spec.grey_convention)
    for epoch in (1, 2, 3):
        old = list(training_batches(train, paired, 4, order, torch.device("cpu"), spec, seed=5))
        new = list(loader)
        assert sampler.epoch == epoch and len(new) == len(old) == len(sampler)
        for a, b in zip(old, new):
            _same(a, b)


def _epoch(s: EpochSampler) -> list:
    """One epoch, each batch marked consumed (as the loader does)."""
    out = []
    for b in s:
        out.append(b)
        s.mark_consumed()
    return out


def test_sampler_state_resumes_mid_epoch_with_the_same_remaining_batches():
    whole = EpochSampler(50, paired=True, batch_size=8, seed=3)
    epochs = [[b.tolist() for b in _epoch(whole)] for _ in range(3)]
    s = EpochSampler(50, paired=True, batch_size=8, seed=3)
    _epoch(s)  # epoch 1
    peek = [b.tolist() for b in s]  # iterating without consuming does not move the position
    assert s.epoch == 2 and s.position == 0 and peek == epochs[1]
    it = iter(s)
    for _ in range(3):  # three batches of epoch 2 consumed
        next(it)
        s.mark_consumed()
    state = s.state_dict()
    r = EpochSampler(50, paired=True, batch_size=8, seed=3)
    r.load_state_dict(state)
    assert r.epoch == 2 and r.position == 3
    assert [b.tolist() for b in r] == epochs[1][3:]
    assert [b.tolist() for b in _epoch(r)] == epochs[1][3:]
    assert [b.tolist() for b in _epoch(r)] == epochs[2]  # the next epoch as the uninterrupted run drew it


def test_sampler_state_of_another_batch_size_is_refused():
    s = EpochSampler(10, paired=True, batch_size=4, seed=0)
    with pytest.raises(ValueError, match="batch_size=4"):
        EpochSampler(10, paired=True, batch_size=5, seed=0).load_state_dict(s.state_dict())


@pytest.mark.parametrize("paired", [True, False])
def test_ranks_together_take_each_global_batch_once(paired):
    world = 3
    whole = EpochSampler(40, paired=paired, batch_size=7, seed=2, unpaired_protocol="shuffled")
    ranks = [EpochSampler(40, paired=paired, batch_size=7, seed=2, unpaired_protocol="shuffled", rank=r, world=world)
             for r in range(world)]
    for _ in range(2):
        globals_ = _epoch(whole)
        per_rank = [_epoch(s) for s in ranks]
        for k, g in enumerate(globals_):
            parts = [p[k] for p in per_rank]
            if paired:
                assert sorted(torch.cat(parts).tolist()) == sorted(g.tolist())
                assert parts[1].tolist() == g[1::world].tolist()
            else:
                for side in (0, 1):
                    assert sorted(torch.cat([p[side] for p in parts]).tolist()) == sorted(g[side].tolist())
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(4, paired=True, batch_size=2, seed=0, rank=2, world=2)


@pytest.mark.parametrize("paired", [True, False])
def test_loader_with_worker_processes_gives_the_in_process_batches_and_position(paired):
    train = _images()
    runs = []
    for workers in (0, 2):
        s = EpochSampler(len(train), paired=paired, batch_size=5, seed=7)
        loader = make_train_loader(train, s, workers=workers, device="cpu", grey_convention="bt601")
        got = []
        for _ in range(2):
            batches = []
            for b in loader:
                batches.append(b)
                if len(batches) == 2:
                    assert s.position == 2  # consumed, not prefetched
            got.append(batches)
        loader.close()
        runs.append(got)
    for e0, e2 in zip(*runs):
        assert len(e0) == len(e2)
        for a, b in zip(e0, e2):
            _same(a, b)
