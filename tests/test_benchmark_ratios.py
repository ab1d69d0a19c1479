"""benchmarks/ratios.py reads a pytest-benchmark JSON and judges issue #13's targets from the means."""

import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("ratios", Path(__file__).parents[1] / "benchmarks" / "ratios.py")
ratios = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ratios)


def _bench(group, impl, condition, mean, size=None, n=None, best=None):
    name = f"test_x[{condition}-{size}px-{impl}]" if size else f"test_x[{condition}-{impl}]"
    extra = {"condition": condition, "load_before": 1.0, "load_after": 3.0}
    if size:
        extra.update(size=size, n=n)
    stats = {"mean": mean, "median": mean, "min": best if best is not None else mean, "rounds": 3}
    return {"group": group, "name": name, "params": {"impl": impl}, "extra_info": extra, "stats": stats}


def test_targets_use_means_and_flag_misses(tmp_path, capsys):
    benches = [
        # piq's best round beats colorbench's mean, but its mean does not: PASS (means count, not the best)
        _bench("ssim", "colorbench", "contended", 0.5, 32, 2000), _bench("ssim", "piq", "contended", 0.6, 32, 2000, best=0.1),
        _bench("metric-set", "colorbench-streamed", "contended", 1.0, 256, 32),
        _bench("metric-set", "per-image-skimage-loop", "contended", 4.0, 256, 32),  # 4x < 5x: MISS
        _bench("train-epoch", "policy", "idle", 1.0), _bench("train-epoch", "policy", "contended", 2.0),  # 0.5x
    ]
    path = tmp_path / "B.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    got = {what.split(":")[0]: (round(value, 3), met) for what, value, _, met in ratios.targets(ratios.load(str(path)))}
    assert got["contended SSIM 32px"] == (1.2, True)
    assert got["contended metric set 256px"] == (4.0, False)
    assert got["quick training epoch (policy)"] == (0.5, True)
    assert ratios.main([str(path), "--check"]) == 1 and ratios.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "MISS  contended metric set 256px" in out and "2.00" in out  # the load (mean of before/after)
