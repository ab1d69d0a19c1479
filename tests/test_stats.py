"""Seeds and paired statistics (colorbench.reports.stats) and the grid report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from colorbench.records import MetricValue, RunRecord
from colorbench.reports.stats import holm, paired_bootstrap, paired_comparisons, seed_summary, wilcoxon_p


def test_holm_on_a_worked_example():
    # Holm (1979) step-down by hand: sorted p 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06,
    # max(0.06, 0.04) = 0.06 (monotone), back in the input order.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    out = holm([0.01, float("nan")])
    assert out[0] == pytest.approx(0.01) and math.isnan(out[1])  # one test in the family


def test_paired_tests_agree_with_scipy_on_known_data():
    rng = np.random.default_rng(0)
    base = rng.uniform(10, 40, 60)  # large between-image spread ...
    x = base + 0.3 + rng.normal(0, 0.2, 60)  # ... and a small consistent improvement
    assert wilcoxon_p(x, base) == pytest.approx(sps.wilcoxon(x, base).pvalue)
    assert wilcoxon_p(x, base) < 1e-8
    assert sps.ttest_ind(x, base).pvalue > 0.5  # what an unpaired test would say: nothing
    lo, hi, p = paired_bootstrap(x - base, seed=1)
    ref = sps.bootstrap((x - base,), np.mean, n_resamples=2000, method="percentile",
                        rng=np.random.default_rng(1))
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert lo < 0.3 < hi and p == 0.0  # no resample of 2000 reaches a mean difference of 0
    noise = rng.normal(0, 1, 60)
    lo, hi, p = paired_bootstrap(noise - noise.mean(), seed=1)
    assert lo < 0 < hi and p > 0.5
    assert wilcoxon_p(base, base) == 1.0 and paired_bootstrap(np.zeros(5))[2] == 1.0  # identical: no evidence


def _rec(method, seed, psnr, status="ok", dataset="shapes"):
    return RunRecord(method=method, preset="quick", dataset={"name": dataset}, grey_convention="bt601", seed=seed,
                     device="cpu", status=status,
                     metrics={} if status != "ok" else
                     {"psnr": MetricValue(value=psnr, metric="psnr", version="1", higher_is_better=True)})


def test_seed_summary_mean_std_n():
    recs = [_rec("a", 0, 20.0), _rec("a", 1, 21.0), _rec("a", 2, 23.0), _rec("b", 0, 10.0), _rec("b", 1, 0, "failed")]
    s = seed_summary(recs).set_index(["method", "key"])
    assert s.loc[("a", "psnr"), "mean"] == pytest.approx(np.mean([20, 21, 23]))
    assert s.loc[("a", "psnr"), "std"] == pytest.approx(np.std([20, 21, 23], ddof=1))
    assert s.loc[("a", "psnr"), "n"] == 3 and s.loc[("b", "psnr"), "n"] == 1 and s.loc[("b", "psnr"), "n_cells"] == 2
    assert math.isnan(s.loc[("b", "psnr"), "std"])


def test_paired_comparisons_mark_ties_and_holm_correct():
    rng = np.random.default_rng(3)
    ids = [f"img{i}" for i in range(50)]
    base = rng.uniform(15, 35, 50)
    per_seed = {"best": [base + 1.0, base + 1.1], "twin": [base + 1.0 + rng.normal(0, 0.5, 50) for _ in range(2)],
                "worse": [base - 2.0 + rng.normal(0, 0.1, 50) for _ in range(2)]}
    frames = {("shapes", m): [pd.DataFrame({"id": ids, "psnr": v}) for v in vals] for m, vals in per_seed.items()}
    recs = [_rec(m, s, float(v.mean())) for m, vals in per_seed.items() for s, v in enumerate(vals)]
    comp = paired_comparisons(frames, seed_summary(recs)).set_index("method")
    assert set(comp.index) == {"twin", "worse"} and set(comp["best"]) == {"best"}
    assert comp.loc["worse", "mean_diff"] == pytest.approx(-2.0 - 1.05, abs=0.05)
    assert not comp.loc["worse", "indistinguishable"] and comp.loc["worse", "p_wilcoxon_holm"] < 1e-6
    # "twin" is "best" averaged over seeds plus zero-mean noise: not told apart
    assert comp.loc["twin", "indistinguishable"] and comp.loc["twin", "p_wilcoxon_holm"] >= 0.05
    assert comp["p_wilcoxon_holm"].tolist() == pytest.approx(holm(comp["p_wilcoxon"]).tolist())
    twin = np.mean(per_seed["twin"], axis=0)
    assert comp.loc["twin", "p_wilcoxon"] == pytest.approx(sps.wilcoxon(twin, base + 1.05).pvalue)
    assert comp.loc["twin", "n_images"] == 50 and comp.loc["twin", "n_seeds"] == 2


@pytest.mark.slow
def test_grid_report_seeds_datasets_and_comparisons(tmp_path):
    from colorbench.rundir import RunDir
    from colorbench.runner import RunSpec, run

    spec = RunSpec(methods=("gray", "unet-l1"), datasets=("shapes", "photos"), seeds=(0, 1), epochs=1,
                   dataset_options=(("photos.photos", ["astronaut", "coffee"]), ("photos.test_per_photo", 8),
                                    ("photos.train_per_photo", 16), ("shapes.n_test", 16), ("shapes.n_train", 32),
                                    ("size", 32)),
                   progress=False, n_samples=2, eval_batch_size=16, metrics=("mse", "ssim", "ab_histogram_kl"))
    out = run(spec, out=tmp_path / "grid", log=lambda s: None)
    rd = RunDir(out)
    assert len(rd.cells()) == 8 and all(c.status == "ok" for c in rd.cells())
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 8 and {"dataset", "method", "seed"} <= set(results.columns)
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == 4 and set(board["n_ok"]) == {2}
    row = board.set_index(["dataset", "method"]).loc[("shapes", "unet-l1")]
    vals = results[(results.dataset == "shapes") & (results.method == "unet-l1")]["mse"]
    assert row["mse"] == pytest.approx(vals.mean()) and row["mse_std"] == pytest.approx(vals.std(ddof=1))
    comp = pd.read_csv(out / "comparisons.csv")
    assert set(comp["dataset"]) == {"shapes", "photos"} and set(comp["metric"]) >= {"mse", "ssim"}
    assert "kl_a" not in set(comp["metric"])  # set-level: no paired test
    md = (out / "leaderboard.md").read_text()
    assert "## Leaderboard: shapes" in md and "## Leaderboard: photos" in md and "(n=2)" in md
    assert "Set-level metrics (KL a, KL b) have no per-image values" in md
    assert (out / "figures" / "samples_photos.png").is_file()
