"""First load (decode + write the cache) vs cached load (memory-map) of 10,000-image fixtures.

Not collected by the normal test run (testpaths = tests). Run with:

    python -m pytest benchmarks/test_dataset_cache.py -o addopts="" --benchmark-only --benchmark-columns=min,mean,max,rounds

Fixtures: a CIFAR-10 copy in the official pickle format with 10,000 32x32 images (8,000 train in five batches,
2,000 test), and an image folder of 10,000 small JPEGs (10 classes x 1,000, 40..80 px, decoded to 64x64 with
resize-shorter-center-crop). Each first-load round uses a fresh cache folder. The CIFAR fixture cannot match the
official md5s, so torchvision's md5 check is replaced by an existence check here (as in the tests).
"""

import itertools
import os

import pytest

from colorbench.datasets import DATASETS, fixtures as fx

N_CIFAR_TRAIN, N_CIFAR_TEST = 8000, 2000
N_CLASSES, PER_CLASS = 10, 1000


def _exists_only(fpath, md5=None):
    return os.path.isfile(fpath)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr("torchvision.datasets.cifar.check_integrity", _exists_only)
    root = tmp_path_factory.mktemp("bench")
    fx.write_cifar10(root / "cifar", n_train=N_CIFAR_TRAIN, n_test=N_CIFAR_TEST)
    fx.write_image_folder(root / "jpegs", classes=[f"c{i}" for i in range(N_CLASSES)], per_class=PER_CLASS)
    yield root
    mp.undo()


CASES = {
    "cifar10": lambda root, **kw: DATASETS.get("cifar10")(data_root=str(root / "cifar"), **kw),
    "jpeg-folder": lambda root, **kw: DATASETS.get("image-folder")(data_root=str(root / "jpegs"), size=64, **kw),
}


@pytest.mark.parametrize("case", list(CASES))
def test_first_load(benchmark, roots, case):
    counter = itertools.count()

    def setup():
        return (), {"cache_dir": str(roots / f"cache-first-{case}-{next(counter)}")}

    def first(cache_dir):
        data = CASES[case](roots, cache_dir=cache_dir).load()
        assert not data.info["cache"]["hit"]
        return data

    data = benchmark.pedantic(first, setup=setup, rounds=3, iterations=1)
    assert len(data.train) + len(data.test) == 10_000


@pytest.mark.parametrize("case", list(CASES))
def test_cached_load(benchmark, roots, case):
    cache_dir = str(roots / f"cache-warm-{case}")
    CASES[case](roots, cache_dir=cache_dir).load()  # fill the cache

    def cached():
        data = CASES[case](roots, cache_dir=cache_dir).load()
        assert data.info["cache"]["hit"]
        return data

    data = benchmark.pedantic(cached, rounds=10, iterations=1)
    assert len(data.train) + len(data.test) == 10_000
    assert int(data.train.rgb.sum(dtype=None).item()) > 0  # the mapped pixels are readable
