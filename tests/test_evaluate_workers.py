"""``colorbench evaluate --workers N``: scoring processes whose per-batch states merge in batch order give the
values of one process; a bad image is reported as with one process; a killed process is an error, never a partial
result."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.engine.predictions import PredictionFolderError, evaluate_folder
from colorbench.engine.protocols import ScoringWorkerDied, get_protocol, stream_metrics
from colorbench.metrics import METRICS
from colorbench.metrics.base import StreamingMetric, ValueBuffer
from colorbench.results.rundir import RunDir

N = 40


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    target, pred = root / "target", root / "pred"
    target.mkdir()
    pred.mkdir()
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    for k in range(N):  # upscaled noise, so SSIM is not degenerate
        real = np.asarray(Image.fromarray(np.roll(base, k, axis=(0, 1))).resize((24, 24), Image.BILINEAR))
        Image.fromarray(real).save(target / f"im{k:03d}.png")
        noisy = np.clip(real.astype(int) + rng.integers(-25, 26, size=real.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pred / f"im{k:03d}.png")
    return target, pred


def _evaluate(folders, out, cache, workers):
    target, pred = folders
    evaluate_folder(pred, out, "noisy", target=target, eval_batch_size=6, workers=0, score_workers=workers,
                    log=lambda s: None)
    rd = RunDir(out)
    (cell,) = rd.cells()
    return rd.record(cell), rd.per_image(cell)


def test_two_scoring_processes_give_the_values_of_one(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORBENCH_CACHE_DIR", str(tmp_path / "cache"))
    one, per_one = _evaluate(folders, tmp_path / "one", tmp_path, 1)
    two, per_two = _evaluate(folders, tmp_path / "two", tmp_path, 2)
    assert len(one.metrics) >= 10  # the default metrics (LPIPS missing without its weights)
    for key, mv in one.metrics.items():  # exact: per-image values concatenated, histograms summed as integers
        assert (two.metrics[key].value, two.metrics[key].ci95) == (mv.value, mv.ci95), key
    assert set(per_one) == set(per_two)
    for key in per_one:
        assert np.array_equal(per_one[key], per_two[key]), key
    assert (one.config["score_workers"], two.config["score_workers"]) == (1, 2)


def test_a_bad_image_is_reported_as_with_one_process(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORBENCH_CACHE_DIR", str(tmp_path / "cache"))
    target, pred = folders
    bad = tmp_path / "pred"
    bad.mkdir()
    for f in pred.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "im031.png").write_bytes(b"not a png")  # in the last shard's batches
    messages = []
    for workers in (1, 2):
        with pytest.raises(PredictionFolderError) as info:
            evaluate_folder(bad, tmp_path / f"run{workers}", "x", target=target, eval_batch_size=6, workers=0,
                            score_workers=workers, log=lambda s: None)
        messages.append(str(info.value))
        assert not list((tmp_path / f"run{workers}").glob("cells/*/record.json"))  # nothing written
    assert messages[0] == messages[1] and "im031.png" in messages[0]


class _DiesInAWorker(StreamingMetric):
    """Kills the scoring process it runs in at its second batch (never the test process)."""

    name, version, outputs, per_image = "dies", "1", {"dies": True}, False

    def __init__(self, parent: int) -> None:
        super().__init__()
        self.parent = parent
        self.add_state("values", ValueBuffer(), reduce="cat")

    def update_inputs(self, inputs) -> None:
        if os.getpid() != self.parent and inputs.pred[0, 0, 0, 0] > 0.5:
            os._exit(9)
        self.values.append(torch.zeros(len(inputs)))

    def compute(self):
        return {"dies": 0.0}

    def params(self):
        return {"parent": self.parent}


def test_a_killed_scoring_process_is_a_clear_error():
    batches = [(torch.full((2, 3, 16, 16), v), torch.full((2, 3, 16, 16), v), None) for v in (0.1, 0.2, 0.9, 0.3)]
    with pytest.raises(ScoringWorkerDied, match="exit code 9.*no value was written"):
        stream_metrics({"dies": _DiesInAWorker(os.getpid())}, iter(batches), workers=2)


def test_the_one_loop_serves_the_protocol_and_gives_its_values():
    """Protocol.score (evaluate's path) and stream_metrics + metric_values (the cell evaluator's path) agree."""
    g = torch.Generator().manual_seed(3)
    real = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8, generator=g)
    pred = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8, generator=g)
    proto = get_protocol("colorbench")
    names = ("mse", "psnr", "ssim", "ab_histogram_kl", "colorfulness")
    values, per_image, _ = proto.score(pred.numpy(), real.numpy(), names, batch_size=4)
    metrics = {n: METRICS.get(n)() for n in names}
    stream_metrics(metrics, ((pred[s:s + 3].float() / 255, real[s:s + 3].float() / 255, None)
                             for s in range(0, 10, 3)))
    values2, per_image2 = proto.metric_values(metrics, {})
    assert {k: v.value for k, v in values2.items()} == {k: v.value for k, v in values.items()}
    assert all(np.array_equal(per_image[k], per_image2[k]) for k in per_image)
