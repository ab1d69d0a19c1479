"""The thread policy (colorbench.core.threads): its rules, its record in run.json, and the metric chunk pool."""

import json
import os
import threading

import pytest
import torch

from colorbench.core import threads
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
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a caller on 2 intra-op threads, as a user's process is by default
    threads.set_metric_threads(3)
    try:
        seen = threads.chunk_map(lambda i: (i, torch.get_num_threads(), threading.current_thread().name), range(20))
        assert [s[0] for s in seen] == list(range(20))
        assert all(s[2].startswith("colorbench-chunks") for s in seen)
        assert torch.get_num_threads() == 2  # the caller's setting is unchanged
        # The pool threads stay on 1 intra-op thread, also once they have run ops and after the caller changed its
        # count (torch initialises a thread's count lazily from the process-wide one: before the fix in
        # _worker_init they ran every chunk on the caller's 2 threads).
        x = torch.rand(64, 64)
        ops = threads.chunk_map(lambda i: ((x @ x).sum().item(), torch.get_num_threads())[1], range(20))
        torch.set_num_threads(3)
        again = threads.chunk_map(lambda i: ((x @ x).sum().item(), torch.get_num_threads())[1], range(20))
        assert {s[1] for s in seen} == set(ops) == set(again) == {1}
        torch.set_num_threads(2)
        # nested calls from a pool thread run inline instead of waiting for the pool they occupy
        nested = threads.chunk_map(lambda i: threads.chunk_map(lambda j: i * j, range(3)), range(4))
        assert nested == [[i * j for j in range(3)] for i in range(4)]
        with pytest.raises(ZeroDivisionError):
            threads.chunk_map(lambda i: 1 // i, range(3))
    finally:
        threads.set_metric_threads(None)
        torch.set_num_threads(before)


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
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("gray",), dataset="shapes", dataset_options=(("n_test", 8), ("n_train", 8), ("size", 16)),
                   epochs=1, progress=False, n_samples=2, eval_batch_size=8, metrics=("mse",))
    out = run(spec, out=tmp_path / "run", log=lambda s: None, report=False)
    recorded = json.loads((out / "run.json").read_text())["threads"]
    decision = recorded["decision"]
    assert recorded["metric_section"] == threads.METRIC_SECTION
    assert decision["intra_op_threads"] == 1 and decision["source"] == "COLORBENCH_THREADS"  # tests/conftest.py
    assert decision["reason"] and decision["workload"] == "small"


def test_a_worker_share_is_not_mistaken_for_a_request():
    """Process workers get OMP_NUM_THREADS = their share from the executor: small networks still get 1 thread."""
    d = decide(share=4, environ={"OMP_NUM_THREADS": "4"}, preset="quick")
    assert (d.intra_op_threads, d.metric_threads, d.source) == (1, 4, "policy")
    assert decide(share=4, environ={"COLORBENCH_THREADS": "2"}).source == "COLORBENCH_THREADS"


def test_one_metric_thread_still_runs_the_chunks_single_threaded():
    """set_metric_threads(1) with a caller on 2 intra-op threads: the chunks go to one pool thread (1 intra-op
    thread); with a single-threaded caller they run inline; INTRA_OP (the benchmarks' baseline) runs them inline
    on the caller's threads."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        threads.set_metric_threads(1)
        seen = threads.chunk_map(lambda i: (torch.get_num_threads(), threading.current_thread().name), range(5))
        assert {s[0] for s in seen} == {1} and all(s[1].startswith("colorbench-chunks") for s in seen)
        assert threads.metric_threads() == 1
        threads.set_metric_threads(threads.INTRA_OP)
        seen = threads.chunk_map(lambda i: (torch.get_num_threads(), threading.current_thread().name), range(5))
        assert {s[0] for s in seen} == {2} and {s[1] for s in seen} == {threading.current_thread().name}
        assert threads.metric_threads() == 2
        torch.set_num_threads(1)
        threads.set_metric_threads(1)
        assert {threading.current_thread().name} == set(threads.chunk_map(lambda i: threading.current_thread().name,
                                                                            range(5)))
        for bad in (0, True, "two", 1.5):
            with pytest.raises(ValueError, match="metric threads"):
                threads.set_metric_threads(bad)
    finally:
        threads.set_metric_threads(None)
        torch.set_num_threads(before)


def test_metric_section_runs_the_callers_own_ops_single_threaded_and_restores_them():
    """Inside metric_section the caller is on 1 intra-op thread (its idle OpenMP threads spun against the pool
    threads; see threads.metric_section), the pool keeps the caller's size, nested sections and errors restore the
    count, and caller_threads gives a network's forward pass the caller's threads back."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threads.metric_section():
            assert torch.get_num_threads() == 1 and threads.metric_threads() == 2
            seen = threads.chunk_map(lambda i: (torch.get_num_threads(), threading.current_thread().name), range(8))
            assert {s[0] for s in seen} == {1} and all(s[1].startswith("colorbench-chunks") for s in seen)
            with threads.metric_section():  # re-entrant
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
            with threads.caller_threads():
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1 and threads.metric_threads() == 2
        assert torch.get_num_threads() == 2
        with pytest.raises(ZeroDivisionError), threads.metric_section():
            1 // 0
        assert torch.get_num_threads() == 2
        with threads.caller_threads():  # outside a section: nothing to give back
            assert torch.get_num_threads() == 2
        threads.set_metric_threads(threads.INTRA_OP)  # the benchmarks' baseline: the caller's threads throughout
        with threads.metric_section():
            assert torch.get_num_threads() == 2
    finally:
        threads.set_metric_threads(None)
        torch.set_num_threads(before)


def test_metrics_run_in_a_metric_section_and_networks_leave_it(monkeypatch):
    """The functional metrics and the streaming ones validate (and compute) with the caller on 1 thread and give
    it back afterwards; a network's forward pass (LPIPS here) runs on the caller's threads."""
    counts = []
    check = MF.check_image_pair

    def spy(pred, target):
        counts.append(torch.get_num_threads())
        return check(pred, target)

    from colorbench.metrics.functional import mse_psnr, structural_similarity

    for namespace in (MF, mse_psnr, structural_similarity):  # the package and the modules that call it
        monkeypatch.setattr(namespace, "check_image_pair", spy)
    g = torch.Generator().manual_seed(3)
    target = torch.rand(6, 3, 16, 16, generator=g)
    pred = (0.8 * target + 0.1).clamp(0, 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        MF.psnr(pred, target)
        MF.ssim(pred, target)
        mc = MetricCollection({n: METRICS.get(n)() for n in ("mse", "ab_histogram_kl")})
        mc.update(pred, target)
        METRICS.get("colorfulness")().update(pred, target)
        assert counts == [1, 1, 1, 1] and torch.get_num_threads() == 2

        class Net(torch.nn.Module):
            def forward(self, a, b):
                counts.append(("net", torch.get_num_threads()))
                return (a - b).abs().mean(dim=(1, 2, 3))

        with threads.metric_section():
            MF.lpips_from_model(Net(), pred, target)
            assert torch.get_num_threads() == 1
        assert counts[-1] == ("net", 2) and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_scoring_threads_leave_the_decoders_their_cores_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    before = torch.get_num_threads()
    with threads.scoring_threads(1, environ={}) as n:
        assert n == 3 and torch.get_num_threads() == 3 and threads.metric_threads() == 3
    assert torch.get_num_threads() == before
    with threads.scoring_threads(6, environ={}) as n:
        assert n == 1  # never below one thread
    with threads.scoring_threads(1, environ={"OMP_NUM_THREADS": "2"}) as n:
        assert n == 2
    with threads.scoring_threads(0, environ={"COLORBENCH_THREADS": "1", "OMP_NUM_THREADS": "2"}) as n:
        assert n == 1
    with pytest.raises(ValueError, match="positive integer"):
        with threads.scoring_threads(0, environ={"COLORBENCH_THREADS": "0"}):
            pass


def test_keep_freed_memory_sets_glibc_thresholds_for_this_process_and_later_ones(monkeypatch):
    import os
    import platform

    from colorbench.core import allocator

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    took = allocator.keep_freed_memory()
    assert took == (platform.libc_ver()[0] == "glibc")
    assert int(os.environ["MALLOC_MMAP_THRESHOLD_"]) == allocator.MMAP_THRESHOLD
    assert int(os.environ["MALLOC_TRIM_THRESHOLD_"]) == allocator.TRIM_THRESHOLD


def _spin_outside_our_tree(seconds: float) -> int:
    """A process spinning on one core for ``seconds`` that is not this process's descendant (its parent shell has
    exited, so it was reparented), like another user's job; returns its pid."""
    import subprocess
    import sys

    code = f"import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass"
    out = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{code}" >/dev/null 2>&1 & echo $!'],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def _tree_pids() -> set[int]:
    from pathlib import Path

    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                text = (p / "stat").read_text()
            except OSError:
                continue
            parents[int(p.name)] = int(text[text.rindex(")") + 2:].split()[1])
    ours, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in ours} - ours
        ours |= more
        grew = bool(more)
    return ours


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux /proc")
def test_cores_busy_elsewhere_count_other_processes_not_this_process_tree():
    """The pool's size once read an idle machine as busy: the load average still held an install and this
    command's own imports. The window measure counts another process's spinning core, not our own child's."""
    import signal
    import subprocess
    import sys
    import time

    from colorbench.core import cpuload

    def window() -> tuple[float, float]:
        """(cores busy on the whole machine, cores busy outside this process tree) over 1.2 s; the test sleeps,
        and whatever else runs on the machine counts in both."""
        time.sleep(0.3)
        start = cpuload.snapshot()
        time.sleep(1.2)
        elsewhere, end = cpuload.busy_elsewhere(start), cpuload.snapshot()
        return (end.machine_s - start.machine_s) / (end.t - start.t), elsewhere

    other = _spin_outside_our_tree(4.0)
    try:
        assert other not in _tree_pids()
        machine, elsewhere = window()
    finally:
        try:
            os.kill(other, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert elsewhere is not None and elsewhere >= 0.6 and machine - elsewhere <= 0.3, (machine, elsewhere)

    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        machine, elsewhere = window()
    finally:
        child.kill()
        child.wait()
    assert elsewhere is not None and machine - elsewhere >= 0.6, (machine, elsewhere)  # our child's core is ours


def test_busy_cores_take_the_smaller_of_the_load_average_and_the_window(monkeypatch):
    from colorbench.core import cpuload

    load1 = float(open("/proc/loadavg").read().split()[0])
    monkeypatch.setattr(cpuload, "busy_elsewhere", lambda since=None: 0.0)
    assert threads._busy_cores_elsewhere() == 0.0  # a load average left by our own recent work does not count
    monkeypatch.setattr(cpuload, "busy_elsewhere", lambda since=None: 64.0)
    assert threads._busy_cores_elsewhere() == load1  # a burst the load average has not seen does not count


def test_a_window_too_short_or_from_another_process_is_unknown():
    import dataclasses

    from colorbench.core import cpuload

    now = cpuload.snapshot()
    assert now is not None and cpuload.busy_elsewhere(now) is None  # under MIN_WINDOW_S
    parent = dataclasses.replace(now, t=now.t - 5, pid=now.pid + 1)
    assert cpuload.busy_elsewhere(parent) is None  # a forked child must not subtract its parent's tree
