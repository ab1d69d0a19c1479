"""Seeds and paired statistics (colorbench.reports.stats) and the grid report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from colorbench.results.records import MetricValue, RunRecord
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
    from colorbench.results.rundir import RunDir
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

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


def _grid_run(tmp_path):
    """A 2-seed run directory of three methods, written cell by cell through RunDir.write_cell: "blobs" has the
    best PSNR and MSE but a mean luma SSIM of 0.425 (< 0.7: structure lost), "unet" is the best of the others,
    "gray" trains nothing and carries a caveat. run.json says one method was skipped."""
    from colorbench.results.rundir import CellEntry, RunDir, RunInfo

    rd = RunDir(tmp_path / "grid", create=True)
    rd.write_info(RunInfo(spec={"seed": 0}, datasets={"shapes": {"name": "shapes", "n_train": 40, "n_test": 20}},
                          seeds=[0, 1], skipped={"shapes": {"spyncogan": "needs class labels,\nwhich shapes lacks"}}))
    rng = np.random.default_rng(5)
    ids = [f"img{i}" for i in range(20)]
    base = rng.uniform(10, 20, 20)
    # method -> (psnr offset, luma ssim per seed, mse per seed, epochs per seed, trainable, caveats)
    plan = {"unet": (25.0, (0.99, 0.98), (0.0123, 0.0125), (2, 2), True, []),
            "blobs": (30.0, (0.40, 0.45), (0.00450, 0.00462), (2, 3), True, []),
            "gray": (18.0, (1.0, 1.0), (0.0500, 0.0500), (0, 0), False, ["outputs no colour by design"])}
    for method, (offset, luma, mse, epochs, trainable, caveats) in plan.items():
        for seed in (0, 1):
            psnr = base + offset + 0.2 * seed + rng.normal(0, 0.05, 20)
            lum = np.full(20, luma[seed])
            rec = RunRecord(method=method, preset="quick", dataset={"name": "shapes", "n_test": 20},
                            grey_convention="bt601", seed=seed, device="cpu", caveats=caveats,
                            card={"trainable": trainable}, timings={"train_s": 1.0 + seed},
                            losses=[{"epoch": e + 1, "loss": 1.0 / (e + 1)} for e in range(epochs[seed])],
                            metrics={"psnr": MetricValue(float(psnr.mean()), "psnr", "1", True),
                                     "luma_ssim": MetricValue(float(lum.mean()), "luma_ssim", "1", True),
                                     "mse": MetricValue(mse[seed], "mse", "1", False)})
            entry = CellEntry(key=f"{method}-{seed}", dataset="shapes", method=method, preset="quick", seed=seed)
            rd.write_cell(entry, rec, per_image=pd.DataFrame({"id": ids, "psnr": psnr, "luma_ssim": lum}))
    return rd


def test_grid_leaderboard_has_the_one_seed_tables_marks(tmp_path):
    from colorbench.reports.writer import write_report

    rd = _grid_run(tmp_path)
    write_report(rd.path)
    md = (rd.path / "leaderboard.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    split = lambda line: [c.strip() for c in line.strip().split("|")[1:-1]]  # noqa: E731
    header = split(rows[0])
    table = {cells[0]: dict(zip(header, cells)) for cells in map(split, rows[2:])}
    assert set(table) == {"unet", "blobs", "gray [^1]"} and "Epochs" in header
    assert [table[m]["Epochs"] for m in ("unet", "blobs", "gray [^1]")] == ["2", "2, 3", "0"]
    assert table["blobs"]["Seeds ok / run"] == "2 / 2, **⚠ structure lost**"
    assert table["unet"]["Seeds ok / run"] == "2 / 2" and table["gray [^1]"]["Seeds ok / run"] == "2 / 2"
    # the structure-less row has the highest PSNR and the lowest MSE, but the bold best is unet's
    assert table["blobs"]["PSNR (dB) ↑"].startswith(f"{np.mean(_per_seed_means(rd, 'blobs', 'psnr')):.2f} ± ")
    assert table["unet"]["PSNR (dB) ↑"].startswith("**") and not table["blobs"]["PSNR (dB) ↑"].startswith("**")
    # one format per column: 4 significant digits of the smallest mean (0.00456) -> 6 decimals for every row
    assert table["unet"]["MSE ↓"].startswith("**0.012400** ± ") and table["blobs"]["MSE ↓"].startswith("0.004560 ±")
    assert table["gray [^1]"]["MSE ↓"] == "0.050000 ± 0 (n=2)"
    note = next(line for line in md.splitlines() if line.startswith("⚠ structure lost:"))
    assert "**blobs**" in note and "**unet**" not in note and "mean over seeds" in note
    assert "[^1]: gray: outputs no colour by design" in md
    assert "## Skipped methods" in md and "- **spyncogan** on shapes: needs class labels, which shapes lacks" in md
    # the paired comparisons test against the same best method the table bolds, not the structure-less one
    comp = pd.read_csv(rd.path / "comparisons.csv")
    psnr = comp[comp["metric"] == "psnr"].set_index("method")
    assert set(psnr["best"]) == {"unet"} and set(psnr.index) == {"blobs", "gray"}
    assert psnr.loc["blobs", "mean_diff"] > 4  # still compared: 5 dB better, but not the reference


def _per_seed_means(rd, method, key):
    return [rec.metrics[key].value for rec in rd.records() if rec.method == method]


def test_paired_comparisons_never_choose_a_structure_lost_best(tmp_path):
    from colorbench.reports.stats import structure_lost_cells

    rd = _grid_run(tmp_path)
    records = rd.records()
    frames: dict = {}
    for cell in rd.cells():
        frames.setdefault((cell.dataset, cell.method), []).append(rd.per_image(cell))
    summary = seed_summary(records)
    assert structure_lost_cells(summary) == {("shapes", "blobs")}
    assert structure_lost_cells(summary, threshold=0.3) == set()
    comp = paired_comparisons(frames, summary)
    assert set(comp[comp["metric"] == "psnr"]["best"]) == {"unet"}
    # with the check off, the highest mean wins, whatever its structure
    off = paired_comparisons(frames, summary, structure_threshold=0.0)
    assert set(off[off["metric"] == "psnr"]["best"]) == {"blobs"}
    # a family whose methods all lost their structure has no best method and no rows
    lost_all = paired_comparisons(frames, summary, structure_threshold=1.5)
    assert lost_all.empty


# --- one bootstrap (issue 21): core.stats for the recorded intervals and the paired comparisons -----------------------
def _bootstrap_ci_before_scipy(v: np.ndarray, seed: int, n_resamples: int = 1000) -> tuple[float, float]:
    """colorbench's hand-written percentile bootstrap as it was until scipy did the resampling (commit 243d865,
    ``bench/core/stats.py``): the recorded ``ci95`` of every run made before must stay what it is."""
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


@pytest.mark.parametrize("n", [2, 3, 17, 250])
def test_recorded_intervals_are_bit_identical_to_the_hand_written_bootstrap(n):
    from colorbench.core.stats import bootstrap_ci

    rng = np.random.default_rng(n)
    for seed in range(5):
        v = rng.normal(20, 5, n)
        assert bootstrap_ci(v, float(v.mean()), seed=seed) == _bootstrap_ci_before_scipy(v, seed)  # == on floats


def test_paired_bootstrap_reads_the_same_distribution_as_scipy():
    from colorbench.core.stats import bootstrap_means

    rng = np.random.default_rng(3)
    d = rng.normal(0.1, 1, 40)
    ref = sps.bootstrap((d,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(7))
    dist = bootstrap_means(d, 7, 2000)
    np.testing.assert_array_equal(dist, ref.bootstrap_distribution)  # the same resamples, the same means
    lo, hi, p = paired_bootstrap(d, seed=7)
    assert (lo, hi) == tuple(float(x) for x in np.percentile(dist, [2.5, 97.5]))
    # scipy's own interval (quantiles at 0.025000000000000022) differs at most in the last bits
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=1e-12, abs=0)
    assert p == min(1.0, 2 * min(float(np.mean(dist <= 0)), float(np.mean(dist >= 0))))


def test_bootstrap_in_batches_is_the_whole_draw_to_the_bit(monkeypatch):
    """Resamples drawn a few at a time (bounded memory at 50,000 images) give the distribution drawn at once."""
    import numpy as np

    from colorbench.core import stats as core_stats

    v = np.random.default_rng(0).normal(size=3001)
    whole = core_stats.bootstrap_means(v, 5, 200)
    assert core_stats.resample_batch(len(v)) >= 200  # small sets: one draw
    monkeypatch.setattr(core_stats, "RESAMPLE_BATCH_VALUES", 7 * 3001)  # 7 resamples per draw
    assert core_stats.resample_batch(len(v)) == 7
    assert np.array_equal(core_stats.bootstrap_means(v, 5, 200), whole)
    assert not np.array_equal(core_stats.bootstrap_means(v, 6, 200), whole)
