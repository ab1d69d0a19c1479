"""Recipes: every table and figure of the seed papers that the harness can produce, as a named, runnable grid.

``colorbench reproduce --list`` lists them; ``colorbench reproduce NAME [--scale quick|paper] --out DIR`` runs one.
A recipe is data: for each scale a grid of *stages* — one runner call each (methods × one dataset × one preset,
epochs, evaluation schedule, unpaired protocol, cross-domain classifier) — repeated over the scale's seeds, plus
the paper's own numbers (``paper_values.json``, shipped with the package, each with its table and page) and the
paper's qualitative claims. Every stage runs through :func:`colorbench.engine.grid.run`, the engine of ``colorbench
run``; the recipe reads the records it wrote and puts the measured values beside the paper's:

    DIR/stages/<stage>/seed<k>/      one ordinary run directory per stage and seed (records, report, figures)
    DIR/comparison.csv               one row per paper value: paper_* columns beside measured_* ones
    DIR/comparison.md                the same table, the claims and whether they hold at this scale
    DIR/recipe.json                  the recipe, scale, stages, seeds, timings

``--scale quick`` runs on the built-in offline data in minutes on a CPU (small image sets, a few epochs: the
measured numbers are *not* comparable to the paper's, only the claims' directions are checked); ``--scale paper``
is the paper's setup (datasets, image sizes, epochs, schedules) for a GPU machine with the datasets.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from colorbench.core.fsio import atomic_write_text
from colorbench.engine.recipe_types import (SCALES, BUILTIN_DATASETS, Claim, Measure, Recipe, Scale, Stage,  # noqa: F401
                                          load_paper_values)

QUICK_PHOTOS = (("size", 32), ("train_per_photo", 4), ("test_per_photo", 2))
QUICK_SHAPES = (("size", 32), ("n_train", 96), ("n_test", 48))
CEZANNE = (("name", "cezanne2photo"), ("side", "A"), ("size", 256))
LANDSCAPE = (("name", "cezanne2photo"), ("side", "B"), ("size", 256))

_SPYNCO = "000_0b618b294f02e353.txt"
_THESIS = "001_185158beffacbb1e.txt"
_REPORT = "002_7b95aee0c78c4e8f.txt"
_FABBRI = "003_0be5b44764616518.txt"

_SPYNCO_DATASETS = {  # paper label -> (dataset, options, epochs)
    "Cezanne paintings": ("cyclegan-folder", CEZANNE, 100),
    "Landscape photos": ("cyclegan-folder", LANDSCAPE, 50),
    "UCMerced Land Use": ("ucmerced", (("size", 256),), 100),
    "Cifar-10": ("cifar10", (), 100),
}


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-").replace("--", "-")


def _spynco_stages(methods: tuple[str, ...], labels: Sequence[str], all_outputs: bool = True) -> tuple[Stage, ...]:
    return tuple(Stage(_slug(label), methods, ds, "paper", opts, epochs, 10, ("mse", "ssim"), "shuffled", all_outputs)
                 for label, (ds, opts, epochs) in _SPYNCO_DATASETS.items() if label in labels)


def _quick_spynco(methods: tuple[str, ...], epochs: int = 3, all_outputs: bool = True) -> Stage:
    return Stage("photos", methods, "photos", "quick", QUICK_PHOTOS, epochs, 1, ("mse", "ssim"), "shuffled", all_outputs)


def _mse_ssim(dataset: str, row: str, method: str) -> tuple[Measure, Measure]:
    return (Measure(dataset, row, "Avg. MSE", method, "mse", "curve-mean"),
            Measure(dataset, row, "Avg. SSIM (%)", method, "ssim", "curve-mean", 100.0))


def _value(df: pd.DataFrame, row: str, metric: str, dataset: str | None = None) -> float | None:
    sel = (df["row"] == row) & (df["metric"] == metric)
    if dataset is not None:
        sel &= df["dataset"] == dataset
    vals = df.loc[sel, "measured"].dropna()
    return float(vals.mean()) if len(vals) else None


def _per_measured_dataset(df: pd.DataFrame) -> list[pd.DataFrame]:
    """One frame per measured stage (a quick stage may stand for several paper datasets: count it once)."""
    first = df.drop_duplicates("measured_dataset")["dataset"].tolist()
    return [df[df["dataset"] == d] for d in first]


def _all(results: list[bool | None]) -> bool | None:
    known = [r for r in results if r is not None]
    return None if not known else all(known)


def _lower(a: str, b: str, metric: str) -> Callable[[pd.DataFrame], bool | None]:
    def check(df: pd.DataFrame) -> bool | None:
        out = []
        for part in _per_measured_dataset(df):
            x, y = _value(part, a, metric), _value(part, b, metric)
            out.append(None if x is None or y is None else x < y)
        return _all(out)
    return check


TABLE1_MEASURES = tuple(m for label in _SPYNCO_DATASETS for pair in (
    _mse_ssim(label, "L^1", "spyncogan-l1"), _mse_ssim(label, "L^{1,2,3}", "spyncogan")) for m in pair)
TABLE2_MEASURES = tuple(m for row, method in (
    ("L^1 without L_contours", "spyncogan-l1-nocontours"), ("L^1", "spyncogan-l1"),
    ("L^{1,2,3} without L_contours", "spyncogan-nocontours"), ("L^{1,2,3}", "spyncogan"))
    for m in _mse_ssim("Cezanne paintings", row, method))


def _table3_measures() -> tuple[Measure, ...]:
    out = []
    for ds in ("UCMerced Land Use (VGG-16, 40 epochs)", "Cifar-10 (AlexNet, 20 epochs)"):
        for ep in (70, 100):
            out.append(Measure(ds, "SpyncoGan (G1(I))", "Avg. %", "spyncogan", "cross_domain_avg", "cross-domain", epoch=ep))
        out.append(Measure(ds, "Real Color", "Avg. %", "real-color", "cross_domain_avg", "cross-domain"))
        out.append(Measure(ds, "Real Gray", "Avg. %", "real-gray", "cross_domain_avg", "cross-domain"))
    return tuple(out)


def _table3_claim(df: pd.DataFrame) -> bool | None:
    out = []
    for part in _per_measured_dataset(df):
        spy = part.loc[part["row"] == "SpyncoGan (G1(I))", "measured"].dropna()
        real = _value(part, "Real Color", "Avg. %")
        out.append(None if real is None or spy.empty else bool(spy.max() > real))
    return _all(out)


def _fig6_claim(metric: str, better: str) -> Callable[[pd.DataFrame], bool | None]:
    def check(df: pd.DataFrame) -> bool | None:
        out = []
        for part in _per_measured_dataset(df):
            g1, cc = _value(part, "SpyncoGan G1", metric), _value(part, "Col-Cycle", metric)
            out.append(None if g1 is None or cc is None else (g1 < cc if better == "lower" else g1 > cc))
        return _all(out)
    return check


def _fig6_measures() -> tuple[Measure, ...]:
    out = []
    for label in _SPYNCO_DATASETS:
        for row, method in (("SpyncoGan G1", "spyncogan"), ("SpyncoGan G2", "spyncogan@G2"),
                            ("SpyncoGan G3", "spyncogan@G3"), ("Col-Cycle", "col-cycle")):
            out += [Measure(label, row, "mean MSE over the curve", method, "mse", "curve-mean"),
                    Measure(label, row, "mean SSIM (%) over the curve", method, "ssim", "curve-mean", 100.0)]
    return tuple(out)


_T3_ROWS = (("U-Net", "unet-l1"), ("pix2pix", "pix2pix"), ("Górriz et al.", "gorriz"),
            ("Our model with feat. rec. loss (VGG)", "gorriz-featrec"),
            ("feat. rec. loss, self-trained feature network (variant, not in Table 3)", "gorriz-featrec-selftrained"))
_T3_METRICS = (("JS a", "js_a"), ("JS b", "js_b"), ("KL a", "kl_a"), ("KL b", "kl_b"), ("PSNR", "psnr"), ("SSIM", "ssim"))
THESIS_T3_MEASURES = tuple(Measure("ImageNet (ILSVRC2012 val, 50/class)", row, label, method, key)
                           for row, method in _T3_ROWS for label, key in _T3_METRICS)


def _best(row: str, metric: str, higher: bool, among: Sequence[str]) -> Callable[[pd.DataFrame], bool | None]:
    def check(df: pd.DataFrame) -> bool | None:
        vals = {r: _value(df, r, metric) for r in among}
        if vals.get(row) is None:
            return None
        others = [v for r, v in vals.items() if r != row and v is not None]
        if not others:
            return None
        return vals[row] >= max(others) if higher else vals[row] <= min(others)
    return check


def _report_claims() -> tuple[Claim, ...]:
    def comparable(df: pd.DataFrame) -> bool | None:
        p, c = (_value(df, r, "mean sum of abs. pixel differences") for r in ("CycleGAN (PatchGAN D)", "CycleGAN (CapsuleGAN D)"))
        return None if p is None or c is None else abs(p - c) / max(p, c) < 0.10

    def no_diversity(df: pd.DataFrame) -> bool | None:
        d = _value(df, "stochastic CycleGAN", "output diversity (mean abs. difference, 0-255)")
        return None if d is None else d < 1.0

    def on_a_level(df: pd.DataFrame) -> bool | None:
        p, c = (_value(df, r, "mean sum of abs. pixel differences") for r in ("CycleGAN (PatchGAN D)", "conditional GAN (pix2pix)"))
        return None if p is None or c is None else abs(p - c) / max(p, c) < 0.20

    return (
        Claim("PatchGAN and CapsuleGAN discriminators perform comparably (sum of abs. differences within 10 %; the "
              "paper's 22,477 vs 23,985 differ by 6.3 %)", "§4.2, p. 7", comparable),
        Claim("the stochastic CycleGAN ignores its noise: different priors give the same image (output diversity "
              "< 1 grey level on 0-255)", "§4.3, p. 8", no_diversity),
        Claim("CycleGAN is 'on a level with' the supervised conditional GAN (within 20 %)", "§5, p. 8", on_a_level),
    )


def _fabbri_claims() -> tuple[Claim, ...]:
    return (
        Claim("the colorful network performs better with L1 than with L2 (L2 averages colours: a lower ab-histogram "
              "JS divergence for L1)", "§3.3", _lower("colorful (G), L1", "colorful (G), L2", "JS b")),
        Claim("Col. Col. (GAN) is more realistic than Col. Col. (G): a lower ab-histogram JS divergence",
              "§3.3, Fig. 3(c)", _lower("colorful (GAN)", "colorful (G), L1", "JS b")),
    )


_FABBRI_ROWS = (("colorful (G), L1", "colorful-l1"), ("colorful (G), L2", "colorful-l2"), ("colorful (GAN)", "colorful-gan"),
                ("cGAN DCGAN (λ3 = 0)", "cgan-dcgan"), ("cGAN LSGAN", "cgan-lsgan"), ("cGAN EBGAN", "cgan-ebgan"),
                ("cGAN WGAN", "cgan-wgan"), ("cGAN DCGAN, L1 + L2 (λ3 > 0)", "l1l2:cgan-dcgan"))


def _fabbri_measures(dataset: str) -> tuple[Measure, ...]:
    return tuple(Measure(dataset, row, label, method, key) for row, method in _FABBRI_ROWS
                 for label, key in (("PSNR", "psnr"), ("JS a", "js_a"), ("JS b", "js_b")))


def _recipes() -> dict[str, Recipe]:
    r: dict[str, Recipe] = {}
    quick_note = ("quick scale: built-in photos (32×32 patches, 4 train / 2 test per photo), the methods' quick "
                  "presets, 3 epochs evaluated every epoch and averaged over epochs 1-3 (the paper: 10-50); every "
                  "paper dataset is stood for by the same photos stage, so the numbers are not the paper's")
    r["spyncogan-table1"] = Recipe(
        "spyncogan-table1", "SpyncoGan output ablation (L^1 vs L^{1,2,3}): avg. MSE / SSIM, G1-G3 curves",
        _SPYNCO, "Table 1, p. 7 (and §6.2.1)",
        "unpaired, whole training split for both domains (shuffled); MSE and SSIM of G1(I) on the test split every "
        "10 epochs, averaged over epochs 10-50; --all-outputs also gives G2, G3",
        TABLE1_MEASURES,
        (Claim("using all N = 3 outputs (L^{1,2,3}) lowers the average MSE on every dataset", "Table 1, §6.2.1",
               _lower("L^{1,2,3}", "L^1", "Avg. MSE")),),
        {"paper": Scale(_spynco_stages(("spyncogan", "spyncogan-l1"), list(_SPYNCO_DATASETS)), (0,),
                        {k: _slug(k) for k in _SPYNCO_DATASETS}, (10, 20, 30, 40, 50),
                        note="the paper's datasets, 100 epochs (Landscape 50), evaluation every 10 epochs"),
         "quick": Scale((_quick_spynco(("spyncogan", "spyncogan-l1")),), (0,),
                        {k: "photos" for k in _SPYNCO_DATASETS}, (1, 2, 3), note=quick_note)})
    r["spyncogan-table2"] = Recipe(
        "spyncogan-table2", "SpyncoGan contours-loss ablation on Cezanne paintings: avg. MSE / SSIM",
        _SPYNCO, "Table 2, p. 7 (and §6.2.1)", r["spyncogan-table1"].protocol, TABLE2_MEASURES,
        (Claim("removing the contours loss lowers SSIM, with L^1 and with L^{1,2,3}", "Table 2, §6.2.1",
               lambda df: _all([_lower("L^1 without L_contours", "L^1", "Avg. SSIM (%)")(df),
                                _lower("L^{1,2,3} without L_contours", "L^{1,2,3}", "Avg. SSIM (%)")(df)])),),
        {"paper": Scale(_spynco_stages(("spyncogan", "spyncogan-nocontours", "spyncogan-l1", "spyncogan-l1-nocontours"),
                                       ["Cezanne paintings"], all_outputs=False), (0,),
                        {"Cezanne paintings": "cezanne-paintings"}, (10, 20, 30, 40, 50), note="Cezanne, 100 epochs"),
         "quick": Scale((_quick_spynco(("spyncogan", "spyncogan-nocontours", "spyncogan-l1", "spyncogan-l1-nocontours"),
                                       all_outputs=False),), (0,), {"Cezanne paintings": "photos"}, (1, 2, 3),
                        note=quick_note)})
    r["spyncogan-table3"] = Recipe(
        "spyncogan-table3", "Cross-domain classification (Table 3 averages, Fig. 7 chord diagrams)",
        _SPYNCO, "Table 3 and Figure 7, p. 8 (and §5.3, §6.2.3)",
        "SpyncoGan trained unpaired (shuffled) with its colorized train/test sets kept every 10 epochs; one "
        "classifier per training set (real colour, real grey, each colorization) tested on every test set; Table 3 "
        "is a training set's mean accuracy over all test sets. Paper: VGG-16 (ImageNet-pretrained, weights from a "
        "file) 40 epochs on UCMerced, AlexNet-BN 20 epochs on CIFAR-10, lr 1e-4 decayed ×0.1 at 33 % and 66 %, "
        "256×256 inputs",
        _table3_measures(),
        (Claim("a classifier trained on SpyncoGan colorizations has a higher average accuracy than one trained on "
               "real colour images", "Table 3, §6.2.3", _table3_claim),),
        {"paper": Scale((Stage("ucmerced-land-use-vgg-16-40-epochs", ("spyncogan",), "ucmerced", "paper",
                               (("size", 256),), 100, 10, ("mse", "ssim"), "shuffled", False, True, "paper-vgg16-imagenet"),
                         Stage("cifar-10-alexnet-20-epochs", ("spyncogan",), "cifar10", "paper", (), 100, 10,
                               ("mse", "ssim"), "shuffled", False, True, "paper-alexnet")), (0,),
                        {"UCMerced Land Use (VGG-16, 40 epochs)": "ucmerced-land-use-vgg-16-40-epochs",
                         "Cifar-10 (AlexNet, 20 epochs)": "cifar-10-alexnet-20-epochs"},
                        epoch_of={70: 70, 100: 100}, note="the paper's datasets and classifiers (GPU)"),
         "quick": Scale((Stage("shapes", ("spyncogan",), "shapes", "quick", QUICK_SHAPES, 2, 1, ("mse", "ssim"),
                               "shuffled", False, True, "quick"),), (0,),
                        {"UCMerced Land Use (VGG-16, 40 epochs)": "shapes", "Cifar-10 (AlexNet, 20 epochs)": "shapes"},
                        epoch_of={70: 1, 100: 2},
                        note="quick scale: built-in labelled shapes (96 train / 48 test, 32×32), SpyncoGan quick 2 "
                             "epochs (colorization epochs 70 and 100 stood for by 1 and 2), the quick classifier "
                             "(small CNN, 4 epochs); both paper datasets are stood for by shapes")})
    r["spyncogan-fig6"] = Recipe(
        "spyncogan-fig6", "MSE / SSIM along training: SpyncoGan G1-G3 vs Col-Cycle", _SPYNCO, "Figure 6, p. 7 (§6.2.2)",
        "unpaired (shuffled), both networks trained in the same conditions (lr 2e-4, 100 epochs, linear decay after "
        "half; Landscape 50), evaluated every 10 epochs; the curves are in each stage's report (figures/)",
        _fig6_measures(),
        (Claim("SpyncoGan's output G1 has a lower MSE than Col-Cycle", "§6.2.2", _fig6_claim("mean MSE over the curve", "lower")),
         Claim("SpyncoGan's output G1 has a higher SSIM than Col-Cycle", "§6.2.2",
               _fig6_claim("mean SSIM (%) over the curve", "higher"))),
        {"paper": Scale(_spynco_stages(("spyncogan", "col-cycle"), list(_SPYNCO_DATASETS)), (0,),
                        {k: _slug(k) for k in _SPYNCO_DATASETS}, tuple(range(10, 101, 10)), note="the paper's datasets"),
         "quick": Scale((_quick_spynco(("spyncogan", "col-cycle")),), (0,), {k: "photos" for k in _SPYNCO_DATASETS},
                        (1, 2, 3), note=quick_note)})
    t3_quick = Stage("photos", tuple(m for _, m in _T3_ROWS), "photos", "quick+thesis-prediction", QUICK_PHOTOS, 3,
                     None, ("psnr", "ssim", "ab_histogram_kl", "ab_histogram_js"))
    r["thesis-table3"] = Recipe(
        "thesis-table3", "U-Net, pix2pix, Górriz, feature-loss model: ab-histogram JS/KL, PSNR, SSIM",
        _THESIS, "Table 3, p. 26 (and the log ab-histograms of Figure 10, p. 27)",
        "paired, ImageNet ILSVRC2012 validation images (50 per class train, 10 per class test), 256×256, the "
        "thesis's prediction mode (dropout and batch statistics at test time, §2.3.2); the ab histograms of each "
        "method are in the stage report (ab_histograms.csv and figures/)",
        THESIS_T3_MEASURES,
        (Claim("pix2pix has the highest PSNR ('PSNR does not penalize desaturated results')", "Table 3, §5.1.2",
               _best("pix2pix", "PSNR", True, [r_ for r_, _ in _T3_ROWS[:4]])),
         Claim("the U-Net baseline is the most desaturated: the highest JS divergence on b", "Table 3, Fig. 10, §5.1.3",
               _best("U-Net", "JS b", True, [r_ for r_, _ in _T3_ROWS[:4]])),
         Claim("the feature reconstruction loss gives the ab histogram closest to the real one (lowest KL on a and b)",
               "Table 3, §5.1.3", lambda df: _all([_best("Our model with feat. rec. loss (VGG)", m, False,
                                                         [r_ for r_, _ in _T3_ROWS[:4]])(df) for m in ("KL a", "KL b")]))),
        {"paper": Scale((Stage("imagenet", tuple(m for _, m in _T3_ROWS), "imagenet-val", "paper", (("size", 256),),
                               None, None, t3_quick.metrics),), (0,),
                        {"ImageNet (ILSVRC2012 val, 50/class)": "imagenet"},
                        note="the thesis's protocol (GPU; gorriz-featrec needs the Caffe VGG16 weights file)"),
         "quick": Scale((t3_quick,), (0,), {"ImageNet (ILSVRC2012 val, 50/class)": "photos"},
                        note="quick scale: built-in photos (32×32), quick presets with the thesis's prediction mode, 3 "
                             "epochs; gorriz-featrec fails without its VGG16 weights file (its row says which file)")})
    r["thesis-table5"] = Recipe(
        "thesis-table5", "U-Net with a shared decoder predicting ab per class (segmentation loss): PSNR, SSIM",
        _THESIS, "Table 5, p. 30 (§5.2)",
        "paired with per-pixel class masks, Pascal VOC (1,464 train / 1,449 test, 21 classes), 256×256, 48 epochs; "
        "unet-l1 is run beside it for reference (not in the paper's table)",
        (Measure("Pascal VOC", "U-Net with segmentation loss", "PSNR", "unet-seg", "psnr"),
         Measure("Pascal VOC", "U-Net with segmentation loss", "SSIM", "unet-seg", "ssim"),
         Measure("Pascal VOC", "U-Net with segmentation loss", "colourfulness", "unet-seg", "colorfulness"),
         Measure("Pascal VOC", "U-Net, L1 only (reference, not in Table 5)", "PSNR", "unet-l1", "psnr"),
         Measure("Pascal VOC", "U-Net, L1 only (reference, not in Table 5)", "colourfulness", "unet-l1", "colorfulness")),
        (Claim("the per-class model learns little colour (§5.2.2: 'simply output the grayscale images'): its "
               "output is less colourful than the plain L1 U-Net's", "§5.2.2, p. 31",
               _lower("U-Net with segmentation loss", "U-Net, L1 only (reference, not in Table 5)", "colourfulness")),),
        {"paper": Scale((Stage("voc", ("unet-seg", "unet-l1"), "voc-seg", "paper", (("size", 256),), None, None,
                               ("psnr", "ssim", "colorfulness")),), (0,), {"Pascal VOC": "voc"},
                        note="Pascal VOC at 256×256; each method with its own paper preset (unet-seg 48 epochs, the "
                             "reference unet-l1 23)"),
         "quick": Scale((Stage("shapes", ("unet-seg", "unet-l1"), "shapes", "quick+thesis-prediction",
                               QUICK_SHAPES, 3, None, ("psnr", "ssim", "colorfulness")),), (0,),
                        {"Pascal VOC": "shapes"},
                        note="quick scale: built-in shapes with 8 mask classes (96 train / 48 test, 32×32), quick "
                             "presets with the thesis's prediction mode, 3 epochs")})
    sad = ("sum_abs_diff", "psnr")
    r["cyclegan-report"] = Recipe(
        "cyclegan-report", "CycleGAN with PatchGAN vs capsule discriminators, stochastic CycleGAN, conditional GAN",
        _REPORT, "§4.2, p. 7 (sum of absolute differences), §4.3 (diversity), §5",
        "unpaired CycleGANs on the whole training split for both domains (shuffled), the report's Adam (β1 0.9, β2 "
        "0.999) and no identity loss; the cGAN (pix2pix as the Keras-GAN zoo: LSGAN + 100·L1) paired; mean over "
        "the test images of the per-image sum of |pred - real| on the 0-255 scale; diversity of the stochastic "
        "generator's samples",
        (Measure("Oxford Flowers (128x128)", "CycleGAN (PatchGAN D)", "mean sum of abs. pixel differences", "cyclegan", "sum_abs_diff"),
         Measure("Oxford Flowers (128x128)", "CycleGAN (CapsuleGAN D)", "mean sum of abs. pixel differences", "cyclegan-capsule", "sum_abs_diff"),
         Measure("Oxford Flowers (128x128)", "stochastic CycleGAN", "mean sum of abs. pixel differences", "cyclegan-stochastic", "sum_abs_diff"),
         Measure("Oxford Flowers (128x128)", "stochastic CycleGAN", "output diversity (mean abs. difference, 0-255)", "cyclegan-stochastic", "diversity"),
         Measure("Oxford Flowers (128x128)", "conditional GAN (pix2pix)", "mean sum of abs. pixel differences", "cgan:pix2pix", "sum_abs_diff")),
        _report_claims(),
        {"paper": Scale((Stage("flowers", ("cyclegan", "cyclegan-capsule", "cyclegan-stochastic"), "flowers102", "paper",
                               (("size", 128),), None, None, sad),
                         Stage("cgan", ("pix2pix",), "flowers102", "cgan-paper", (("size", 256),), None, None, sad)), (0,),
                        {"Oxford Flowers (128x128)": "flowers"},
                        note="Oxford Flowers 102 at 128×128 (the cGAN at the Keras-GAN zoo's 256×256: its sum is "
                             "over 4× the pixels, so it is not comparable with the CycleGANs' at that scale)"),
         "quick": Scale((Stage("photos", ("cyclegan", "cyclegan-capsule", "cyclegan-stochastic"), "photos",
                               "quick+seed002", QUICK_PHOTOS, 2, None, sad),
                         Stage("cgan", ("pix2pix",), "photos", "quick+cgan-losses", QUICK_PHOTOS, 2, None, sad)), (0,),
                        {"Oxford Flowers (128x128)": "photos"},
                        note="quick scale: built-in photos (32×32: the sums cover 1/16 of the report's 128×128 pixels), "
                             "quick networks with the report's optimizer and losses, 2 epochs")})
    r["fabbri-losses"] = Recipe(
        "fabbri-losses", "Colorful network with L1 / L2, as a GAN, and the cGAN loss variants (with λ3 > 0)",
        _FABBRI, "§3.2-3.3 and §4.1-4.4 (a draft without numbers)",
        "paired, CelebA (the report; Places2 in a separate training), 256×256; the generator objective λ1·GAN + "
        "λ2·L1 + λ3·L2 with λ3 = 0, and one cGAN-DCGAN run with λ3 = 100 (L1 + L2 together)",
        _fabbri_measures("CelebA"),
        _fabbri_claims(),
        {"paper": Scale((Stage("celeba", tuple(m for _, m in _FABBRI_ROWS if ":" not in m), "celeba", "paper",
                               (("size", 256),), None, None, ("psnr", "ab_histogram_js")),
                         Stage("l1l2", ("cgan-dcgan",), "celeba", "paper-l1l2", (("size", 256),), None, None,
                               ("psnr", "ab_histogram_js"))), (0,), {"CelebA": "celeba"}, note="CelebA at 256×256"),
         "quick": Scale((Stage("photos", tuple(m for _, m in _FABBRI_ROWS if ":" not in m), "photos", "quick",
                               QUICK_PHOTOS, 2, None, ("psnr", "ab_histogram_js")),
                         Stage("l1l2", ("cgan-dcgan",), "photos", "quick+l1-l2", QUICK_PHOTOS, 2, None,
                               ("psnr", "ab_histogram_js"))), (0,), {"CelebA": "photos"},
                        note="quick scale: built-in photos (32×32), quick presets, 2 epochs")})
    from colorbench.engine.published import ddcolor_recipe  # issue 26: published numbers of the reference methods

    r["ddcolor-table1"] = ddcolor_recipe()
    return r


RECIPES: dict[str, Recipe] = _recipes()


def get(name: str) -> Recipe:
    if name not in RECIPES:
        import difflib

        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f" Did you mean: {close[0]}?" if close else ""
        raise ValueError(f"unknown recipe {name!r}.{hint} Recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


# ---------------------------------------------------------------------------------------------------------------
# Running a recipe and comparing with the paper
# ---------------------------------------------------------------------------------------------------------------


def _stage_dirs(out: Path, stage: Stage, seeds: Sequence[int]) -> dict[int, Path]:
    return {s: out / "stages" / stage.name / f"seed{s}" for s in seeds}


#: The grid-engine options a recipe passes on to every stage (``colorbench reproduce --executor ...``).
ENGINE_OPTIONS = ("executor", "workers", "ray_address", "cpus_per_cell", "gpus_per_cell", "retries")


def run_recipe(name: str, scale: str = "quick", out: str | Path = "colorbench-recipes", *, device: str = "auto",
               seeds: Sequence[int] | None = None, data_root: str | None = None, progress: bool = False,
               log: Callable[[str], None] = print, **engine: Any) -> Path:
    """Run every stage of a recipe (through :func:`colorbench.engine.grid.run`) and write its comparison report.

    Each stage and seed is one run directory of the grid engine, so a recipe that was stopped resumes where it
    stopped (finished cells are kept, ``skipped (done)``) and its cells run on the engine's executors
    (``engine``: :data:`ENGINE_OPTIONS`, e.g. ``executor="process", workers=2``). The comparison gives, per
    paper value, the mean over the seeds, their sample standard deviation and each seed's value, and checks each
    claim on the means and on every seed."""
    unknown = set(engine) - set(ENGINE_OPTIONS)
    if unknown:
        raise TypeError(f"run_recipe: unknown engine option(s) {sorted(unknown)}; choose from {ENGINE_OPTIONS}")
    from colorbench.engine.grid import run

    recipe = get(name)
    sc = recipe.scale(scale)
    seeds = tuple(seeds) if seeds else sc.seeds
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    for stage in sc.stages:
        for seed, run_dir in _stage_dirs(out, stage, seeds).items():
            log(f"recipe {name} ({scale}): stage {stage.name}, seed {seed}: {', '.join(stage.methods)} on "
                f"{stage.dataset} ({stage.preset})")
            t0 = time.perf_counter()
            run(stage.spec(seed, device=device, progress=progress, data_root=data_root, **engine), out=run_dir,
                log=lambda s: log("    " + s))
            timings[f"{stage.name}/seed{seed}"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all
    write_comparison(recipe, scale, out, seeds, timings)
    return out


def _records(run_dir: Path) -> dict[str, Any]:
    """The records of one stage's run directory by method (row) name; {} when the stage has not run."""
    from colorbench.results.rundir import NotARunDirectory, RunDir

    try:
        return {r.method: r for r in RunDir(run_dir).records()}
    except (NotARunDirectory, FileNotFoundError):
        return {}


def _measure(m: Measure, recipe: Recipe, sc: Scale, out: Path,
             seeds: Sequence[int]) -> tuple[dict[int, float], str, str]:
    """({seed: value} of the seeds that measured it, measured dataset, note) of one measure."""
    stage_name = sc.stage_of.get(m.dataset)
    method = m.method
    if ":" in method:  # "<stage>:<record>": a record from another stage of the same dataset
        stage_name, method = method.split(":", 1)
    stage = next((s for s in sc.stages if s.name == stage_name), None)
    if stage is None:
        return {}, "", f"no stage measures {m.dataset!r} at this scale"
    values: dict[int, float] = {}
    notes = []
    for seed, run_dir in _stage_dirs(out, stage, seeds).items():
        if m.how == "cross-domain":
            v, note = _cross_domain_value(run_dir, method, m.epoch, sc)
        else:
            rec = _records(run_dir).get(method)
            v, note = _record_value(rec, m, sc, method)
        if v is not None:
            values[seed] = v * m.factor
        if note:
            notes.append(note if len(seeds) == 1 else f"seed {seed}: {note}")
    label = f"{stage.dataset}" + (f" ({', '.join(f'{k}={v}' for k, v in stage.dataset_options)})" if stage.dataset_options else "")
    return values, label, "; ".join(dict.fromkeys(notes))


def seed_statistics(values: dict[int, float]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation (N - 1; None below 2 seeds), N) of per-seed values."""
    n = len(values)
    if not n:
        return None, None, 0
    mean = sum(values.values()) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values.values()) / (n - 1)) if n > 1 else None
    return mean, sd, n


def _record_value(rec: Any, m: Measure, sc: Scale, method: str) -> tuple[float | None, str]:
    if rec is None:
        return None, f"no record {method!r}"
    if rec.status != "ok":
        return None, f"{method} failed: {rec.error}"
    if m.how == "final" or (m.how == "curve-mean" and not rec.curve):
        mv = rec.metrics.get(m.key)
        if mv is None or mv.value is None:
            return None, f"{method}: metric {m.key} missing" + (f" ({mv.missing_reason})" if mv is not None else "")
        note = "" if m.how == "final" else f"{method}: no curve recorded; the final epoch's value is used"
        return float(mv.value), note
    pts = {p["epoch"]: p["metrics"].get(m.key) for p in rec.curve}
    vals = [pts[e] for e in sc.average_epochs if pts.get(e) is not None] or [v for v in pts.values() if v is not None]
    return (sum(vals) / len(vals), "") if vals else (None, f"{method}: no {m.key} on the curve")


def _cross_domain_value(run_dir: Path, train: str, epoch: int | None, sc: Scale) -> tuple[float | None, str]:
    from colorbench.engine.crossdomain import load_result

    res = load_result(run_dir)
    if res is None:
        return None, "no cross-domain result"
    _, summary, _ = res
    name = train
    if epoch is not None:
        ep = sc.epoch_of.get(epoch, epoch)
        final = int(summary.loc[summary["method"] == train, "epoch"].max()) if (summary["method"] == train).any() else None
        name = train if final is not None and ep >= final else f"{train}@e{ep}"
    row = summary.loc[summary["train"] == name]
    return (float(row["avg"].iloc[0]), "") if len(row) else (None, f"no cross-domain training set {name!r}")


def comparison_frame(recipe: Recipe, scale: str, out: str | Path, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per paper value (and per measure without one): paper_* beside measured_* columns."""
    sc = recipe.scale(scale)
    seeds = tuple(seeds) if seeds else sc.seeds
    paper = recipe.paper_values()
    by_key = {(p["dataset"], p["row"], p["metric"], p.get("epoch")): p for p in paper["rows"]}
    rows = []
    for m in recipe.measures:
        p = by_key.get((m.dataset, m.row, m.metric, m.epoch))
        per_seed, where, note = _measure(m, recipe, sc, Path(out), seeds)
        value, sd, n = seed_statistics(per_seed)
        epoch = sc.epoch_of.get(m.epoch, m.epoch) if m.epoch is not None else None
        rows.append({
            "recipe": recipe.name, "scale": scale, "dataset": m.dataset, "row": m.row, "metric": m.metric,
            "paper_epoch": m.epoch, "paper_value": None if p is None else p["value"],
            "paper_source": paper["source"] if p is None else p["where"],
            "measured": value, "measured_sd": sd, "measured_seeds": n,
            **({f"measured_seed{s}": per_seed.get(s) for s in seeds} if len(seeds) > 1 else {}),
            "measured_dataset": where, "measured_method": m.method, "measured_key": m.key,
            "measured_how": m.how + (f" over epochs {list(sc.average_epochs)}" if m.how == "curve-mean" else "")
                            + (f" (epoch {epoch})" if epoch is not None else ""),
            "seeds": len(seeds), "note": note,
        })
    return pd.DataFrame(rows)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_comparison(recipe: Recipe, scale: str, out: str | Path, seeds: Sequence[int] | None = None,
                     timings: dict[str, float] | None = None) -> dict[str, Path]:
    """Write ``comparison.csv``, ``comparison.md`` and ``recipe.json`` (atomically) for a recipe's run folder."""
    out = Path(out)
    sc = recipe.scale(scale)
    df = comparison_frame(recipe, scale, out, seeds)
    seeds = tuple(seeds) if seeds else sc.seeds
    claims = []
    for c in recipe.claims:
        try:
            held = c.check(df)
            # with several seeds, the claim on each seed's values too (the same check, measured = that seed's)
            per_seed = [c.check(df.assign(measured=df[f"measured_seed{s}"])) for s in seeds] if len(seeds) > 1 else []
        except Exception as exc:  # noqa: BLE001 - a claim that cannot be checked is reported, not a crash
            held, per_seed = None, []
            c = Claim(c.text + f" (check failed: {type(exc).__name__}: {exc})", c.where, c.check)
        holds = {True: "yes", False: "no", None: "not measurable"}[held]
        if per_seed and held is not None:
            holds += f" (on the mean; in {sum(h is True for h in per_seed)} of {len(seeds)} seeds)"
        claims.append({"claim": c.text, "where": c.where, "holds": holds,
                       "holds_per_seed": {str(s): h for s, h in zip(seeds, per_seed)}})
    paths = {"csv": out / "comparison.csv", "md": out / "comparison.md", "json": out / "recipe.json"}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    paper = recipe.paper_values()
    lines = [f"# {recipe.name}: {recipe.title}", "", f"Paper: `{recipe.seed_file}`, {recipe.source}.", "",
             f"Protocol: {recipe.protocol}.", "", f"Scale **{scale}**: {sc.note}.", ""]
    if paper.get("note"):
        lines += [f"Note on the paper's values: {paper['note']}.", ""]
    if not paper["rows"]:
        lines += [f"The paper prints no numbers here ({paper['source']}); the claims below are what is compared.", ""]
    n_seeds = len(seeds or sc.seeds)
    if n_seeds > 1:
        lines += [f"Measured values: mean ± sample standard deviation over {n_seeds} seeds (each seed's value in "
                  "comparison.csv, `measured_seed<k>`); each claim is checked on the means and on every seed.", ""]
    lines += ["| dataset (paper) | row | metric | paper value | measured | measured on | how | note |",
              "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        row = r.row + (f" [epoch {int(r.paper_epoch)}]" if r.paper_epoch is not None and not pd.isna(r.paper_epoch) else "")
        note = r.note if isinstance(r.note, str) else ""
        note = note if len(note) <= 140 else note[:137] + "... (full text in comparison.csv)"
        measured = _fmt(r.measured)
        if r.measured_seeds > 1:  # mean ± sample sd over the seeds
            measured += f" ± {_fmt(r.measured_sd)} ({int(r.measured_seeds)} seeds)"
        lines.append(f"| {r.dataset} | {row} | {r.metric} | {_fmt(r.paper_value)} | {measured} | "
                     f"{r.measured_dataset} | {r.measured_how} | {note} |")
    lines += ["", "## The paper's claims at this scale", "", "| claim | where | holds here |", "|---|---|---|"]
    lines += [f"| {c['claim']} | {c['where']} | {c['holds']} |" for c in claims]
    lines += ["", "Stage run directories (each with its own report, curves and histograms):", ""]
    for stage in sc.stages:
        for s, d in _stage_dirs(out, stage, seeds or sc.seeds).items():
            lines.append(f"- `{d.relative_to(out)}`: {', '.join(stage.methods)} on {stage.dataset}, preset "
                         f"{stage.preset}, seed {s}")
    atomic_write_text(paths["md"], "\n".join(lines) + "\n")
    info = {**recipe.describe(scale), "claims": claims, "timings": timings or {},
            "paper_values_source": paper["source"]}
    atomic_write_text(paths["json"], json.dumps(info, indent=2, default=str))
    return paths
