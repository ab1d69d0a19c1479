import os

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files; no display in CI

import pytest  # noqa: E402
import torch  # noqa: E402

# The test networks are tiny: a second intra-op thread only adds synchronisation, and on a loaded 2-core machine
# it made the same pix2pix step ~25x slower (measured: 21 vs 545 images/s). One thread keeps the suite's time
# predictable; the runner applies colorbench.core.threads' policy (one thread for small networks on the CPU too).
torch.set_num_threads(1)
# ... and colorbench's thread policy (colorbench.core.threads, which the runner applies) keeps to it, metric pool included
os.environ.setdefault("COLORBENCH_THREADS", "1")
# `colorbench run`'s default executor is `auto` (a process pool when cores are free): the CLI tests monkeypatch
# things in this process and expect them to hold in the cells, so they compute here unless a test asks for a pool
os.environ.setdefault("COLORBENCH_EXECUTOR", "local")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def zhang_weights_stand_ins(tmp_path_factory):
    """TEST ONLY: random-valued state dicts with the names and shapes of Zhang et al.'s released files (see
    tests/zhang_stand_ins.py), put where ``colorbench.core.weights.require`` finds them for the rest of the session, so
    the method contract tests can build ``zhang-siggraph17`` and ``zhang-eccv16 --preset released`` offline. The
    methods record ``stand_in_for_tests: True`` in their notes."""
    import contextlib

    from zhang_stand_ins import write_stand_in

    from colorbench.core import weights

    folder = tmp_path_factory.mktemp("zhang_weights")
    with contextlib.ExitStack() as stack:
        paths = {}
        for name in ("zhang-eccv16", "zhang-siggraph17"):
            paths[name] = write_stand_in(name, folder / f"stand_in_{name}.pth")
            stack.enter_context(weights.stand_in_for_tests(name, paths[name]))
        yield paths


@pytest.fixture(scope="session")
def random_vgg16_hub(tmp_path_factory):
    """A torch-hub folder holding a *test fixture* in the on-disk format of the Caffe VGG16 weights that
    ``gorriz-featrec`` needs (``checkpoints/vgg16-00b39a1b.pth``, torchvision layout ``features.N.*``): random
    values (torch's default conv init, seed 0), only the block1–block3 entries the method loads. It is NOT
    ImageNet VGG16: anything measured with it compares term magnitudes only."""
    from colorbench.methods.nets.features import CAFFE_VGG16_FILE, vgg16_block3

    hub = tmp_path_factory.mktemp("hub-random-vgg16")
    (hub / "checkpoints").mkdir()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trunk = vgg16_block3(64)
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, hub / "checkpoints" / CAFFE_VGG16_FILE)
    return hub


@pytest.fixture()
def with_random_vgg16(random_vgg16_hub, monkeypatch):
    """Point torch.hub at :func:`random_vgg16_hub` for one test (the test-fixture VGG16, random values)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(random_vgg16_hub))
    return random_vgg16_hub


@pytest.fixture(scope="session")
def ddcolor_tiny_stand_in(tmp_path_factory):
    """TEST ONLY: the path of a random-valued file in the layout of the authors' ``ddcolor_paper_tiny.pth``
    (tests/ddcolor_stand_ins.py; 220 MB, written once per session). Not the released weights."""
    from ddcolor_stand_ins import write_stand_in

    return write_stand_in(tmp_path_factory.mktemp("ddcolor_weights") / "stand_in_ddcolor_paper_tiny.pth")


@pytest.fixture()
def ddcolor_weights_stand_in(ddcolor_tiny_stand_in):
    """For one test, ``colorbench.core.weights.require("ddcolor-paper-tiny")`` finds the stand-in (recorded by the
    method as ``stand_in_for_tests``)."""
    from colorbench.core import weights

    with weights.stand_in_for_tests("ddcolor-paper-tiny", ddcolor_tiny_stand_in) as path:
        yield path


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright, one per test module (the browser test modules skip themselves when
    either is missing)."""
    from playwright import sync_api
    from html_fixtures import CHROMIUM, FLAGS

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    """Where browser tests save their screenshots: $COLORBENCH_SCREENSHOTS, else a temporary folder."""
    from pathlib import Path

    folder = Path(os.environ.get("COLORBENCH_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
