"""The thread policy (colorbench.threads): its rules, its record in run.json, and the metric chunk pool."""

import json
import threading

import pytest
import torch

from colorbench import threads
from colorbench.metrics import METRICS, MetricCollection
from colorbench.metrics import functional as MF


def decide(**kw):
    kw.setdefault("environ", {})
    kw.setdefault("cores", 8)
    kw.setdefault("busy_elsewhere", 0.0)
    return threads.decide_thread_policy(**kw)


def test_small_cpu_networks_get_one_intra_op_thread_and_the_metric_pool_the_worker_share():
    d = decide(n_workers=2, preset="quick", image_size=(32, 32))
    assert (d.intra_op_threads, d.metric_threads, d.workload, d.source) == (1, 4, "small", "policy")
    assert "small networks" in d.reason


def test_large_cpu_networks_get_the_worker_share_less_the_busy_cores():
    assert decide(n_workers=2, preset="paper", image_size=(256, 256)).intra_op_threads == 4
    busy = decide(n_workers=1, preset="paper", image_size=(256, 256), busy_elsewhere=5.0)
    assert (busy.intra_op_threads, busy.metric_threads) == (3, 8) and "5.0 cores busy" in busy.reason
    assert decide(preset="paper", image_size=256, busy_elsewhere=20.0).intra_op_threads == 1  # never 0
    assert decide(preset="paper", image_size=256, busy_elsewhere=None).intra_op_threads == 8  # load unknown


def test_gpu_runs_get_the_worker_share():
    d = decide(n_workers=3, device="cuda", preset="quick")
    assert (d.intra_op_threads, d.metric_threads, d.device) == (2, 2, "cuda")


def test_requests_take_precedence_in_order_argument_env_omp():
    env = {"COLORBENCH_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert decide(threads=2, environ=env).intra_op_threads == 2
    d = decide(environ=env)
    assert (d.intra_op_threads, d.metric_threads, d.source) == (3, 3, "COLORBENCH_THREADS")
    assert decide(environ={"OMP_NUM_THREADS": "5"}).source == "OMP_NUM_THREADS"
    with pytest.raises(ValueError, match="COLORBENCH_THREADS must be a positive integer"):
        decide(environ={"COLORBENCH_THREADS": "two"})
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        decide(threads=0)
    with pytest.raises(ValueError, match="n_workers"):
        decide(n_workers=0)


def test_workload_classes():
    assert threads.workload_of("quick", (128, 128)) == "small"
    assert threads.workload_of("paper", (64, 64)) == "small"
    assert threads.workload_of("paper", (256, 256)) == "large"
    assert threads.workload_of("paper") == "large" and threads.workload_of() == "small"


def test_usable_cores_is_at_most_the_affinity_mask():
    assert 1 <= threads.usable_cores() <= len(__import__("os").sched_getaffinity(0))


def test_apply_sets_torch_threads_and_the_metric_pool(monkeypatch):
    monkeypatch.setenv("COLORBENCH_THREADS", "2")
    before = torch.get_num_threads()
    try:
        info = threads.apply_thread_policy(1, preset="quick")
        assert torch.get_num_threads() == 2 and threads.metric_threads() == 2
        assert info["torch_threads_before"] == before and info["source"] == "COLORBENCH_THREADS"
        json.dumps(info)  # goes into run.json as it is
    finally:
        torch.set_num_threads(before)
        threads.set_metric_threads(None)


def test_chunk_map_keeps_order_runs_single_threaded_and_leaves_the_caller_alone():
    threads.set_metric_threads(3)
    try:
        seen = threads.chunk_map(lambda i: (i, torch.get_num_threads(), threading.current_thread().name), range(20))
        assert [s[0] for s in seen] == list(range(20))
        assert {s[1] for s in seen} == {1}
        assert all(s[2].startswith("colorbench-chunks") for s in seen)
        assert torch.get_num_threads() == 1  # the caller's setting (tests: 1) is unchanged
        # nested calls from a pool thread run inline instead of waiting for the pool they occupy
        nested = threads.chunk_map(lambda i: threads.chunk_map(lambda j: i * j, range(3)), range(4))
        assert nested == [[i * j for j in range(3)] for i in range(4)]
        with pytest.raises(ZeroDivisionError):
            threads.chunk_map(lambda i: 1 // i, range(3))
    finally:
        threads.set_metric_threads(None)


def test_metric_values_do_not_depend_on_the_number_of_metric_threads():
    """Bit-identical: each chunk is computed by one thread alone, inline or on the pool."""
    g = torch.Generator().manual_seed(1)
    target = torch.rand(70, 3, 24, 24, generator=g)
    pred = (0.7 * target + 0.2 * torch.rand(target.shape, generator=g)).clamp(0, 1)
    names = ("mse", "psnr", "ssim", "ab_histogram_kl", "colorfulness", "sum_abs_diff")

    def values():
        mc = MetricCollection({n: METRICS.get(n)() for n in names})
        mc.update(pred, target)
        return (mc.compute(), MF.ssim(pred, target),
                MF.ab_histogram_counts(pred), MF.ab_bin_indices(target, 256, (-128.0, 128.0)))

    with torch.no_grad():
        threads.set_metric_threads(1)
        inline = values()
        threads.set_metric_threads(2)
        try:
            pooled = values()
        finally:
            threads.set_metric_threads(None)
    assert inline[0] == pooled[0]
    for a, b in zip(inline[1:], pooled[1:]):
        assert torch.equal(a, b)


def test_run_json_records_the_thread_decision(tmp_path):
    from colorbench.runner import RunSpec, run

    spec = RunSpec(methods=("gray",), dataset="shapes", dataset_options=(("n_test", 8), ("n_train", 8), ("size", 16)),
                   epochs=1, progress=False, n_samples=2, eval_batch_size=8, metrics=("mse",))
    out = run(spec, out=tmp_path / "run", log=lambda s: None, report=False)
    decision = json.loads((out / "run.json").read_text())["threads"]["decision"]
    assert decision["intra_op_threads"] == 1 and decision["source"] == "COLORBENCH_THREADS"  # tests/conftest.py
    assert decision["reason"] and decision["workload"] == "small"


def test_a_worker_share_is_not_mistaken_for_a_request():
    """Process workers get OMP_NUM_THREADS = their share from the executor: small networks still get 1 thread."""
    d = decide(share=4, environ={"OMP_NUM_THREADS": "4"}, preset="quick")
    assert (d.intra_op_threads, d.metric_threads, d.source) == (1, 4, "policy")
    assert decide(share=4, environ={"COLORBENCH_THREADS": "2"}).source == "COLORBENCH_THREADS"
