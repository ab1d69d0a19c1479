"""Published numbers of the field's reference methods (DDColor, CT2, BigColor, ColorFormer, ColTran, DISCO) and the
recipes that measure them (issue 26).

What is here:

* :data:`PUBLISHED_TABLES` — for each paper, the table that holds its numbers, the protocol colorbench pins for
  it (:mod:`colorbench.engine.protocols`), the metrics, and how to reproduce it. **No value is entered**: every
  value must be read from the paper's own text and cited with its table and page, and none could be read here
  (the stored copies of the papers return only their first part; see ``values_status``). A value added to
  ``paper_values.json`` under the recipe's name, with its ``where``, appears beside the measured one.
* :func:`ddcolor_recipe` — ``colorbench reproduce ddcolor-table1 --scale paper``: DDColor's released paper model
  on ImageNet val5k (CT2's protocol), val50k, COCO-Stuff and ADE20K, each at the paper's 256 input and at the
  released pipeline's 512 input with nearest ab upsampling, so the gap between the two settings is measured.
* :func:`missing_inputs` — the files a recipe needs that are not on this machine (datasets, weights), each with
  where to put it, so an offline run says what is missing before it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PublishedTable:
    """Where one paper's numbers are and how colorbench measures them.

    Attributes:
        paper: the paper.
        table: its table (and page when known) holding the numbers.
        datasets: the test sets of that table.
        metrics: the metrics reported.
        protocol: the colorbench protocol that pins the table's conventions.
        reproduce: how a user with the data (and weights) gets the measured value.
        gap: the protocol choices that can explain a gap between a published and a measured value.
        values_status: whether values are entered, and why not.
    """

    paper: str
    table: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    protocol: str
    reproduce: str
    gap: tuple[str, ...]
    values_status: str


_NOT_READ = ("no value entered: the paper's table could not be read from its text here (the search tool returns "
             "only the first part of each stored page; arXiv abstracts and the authors' READMEs hold no numbers)")

PUBLISHED_TABLES: tuple[PublishedTable, ...] = (
    PublishedTable(
        "DDColor (Kang et al., ICCV 2023; arXiv:2212.11613)", "Table 1 (quantitative comparison)",
        ("ImageNet val50k", "ImageNet val5k", "COCO-Stuff val", "ADE20K val"), ("FID", "CF", "ΔCF", "PSNR"),
        "ddcolor-imagenet-val50k, ct2-imagenet-val5k (val5k: centre crop + resize, piddnad/DDColor#9), "
        "ddcolor-cocostuff, ddcolor-ade20k",
        "colorbench weights fetch ddcolor-paper inception-v3-1a9a5a14; colorbench reproduce ddcolor-table1 "
        "--scale paper --data-root DIR",
        ("input 256 (paper) vs 512 (released pipeline, preset paper-512), nearest vs bilinear ab upsampling "
         "(overlay bilinear-ab)", "FID with torchvision's Inception 1a9a5a14 and DDColor's preprocessing (not "
         "pytorch-fid)", "ΔCF: |CF(real) − CF(colorized)| with the absolute-value CF; the paper's definition is not "
         "in the code", "JPEG saving of predictions (run keeps float; files are read as they are)",
         "users measure CF 34.33 vs 38.26 and FID 3.78 vs 3.92 on val5k with CT2's scripts (piddnad/DDColor#9)"),
        _NOT_READ),
    PublishedTable(
        "CT2 (Weng et al., ECCV 2022)", "the main quantitative table (ImageNet val5k)", ("ImageNet val5k",),
        ("FID", "CF", "ΔCF", "PSNR", "SSIM", "LPIPS"), "ct2-imagenet-val5k",
        "colorbench evaluate PRED_DIR --protocol ct2-imagenet-val5k --target IMAGENET_VAL_DIR --name ct2 "
        "(CT2 is not a colorbench method: score its released colorizations)",
        ("SSIM with data_range 225 (sic) in CT2's code", "predictions saved as JPEG by CT2's test.py",
         "ΔCF: a user reads 2.17 for CT2 in CT2's paper and 0.27 in DDColor's (piddnad/DDColor#9): the papers' "
         "definitions differ"),
        _NOT_READ),
    PublishedTable(
        "BigColor (Kim et al., ECCV 2022)", "the ImageNet comparison table", ("ImageNet val",),
        ("FID", "classification accuracy"), "bigcolor-imagenet-val",
        "colorbench evaluate PRED_DIR --protocol bigcolor-imagenet-val --target IMAGENET_VAL_DIR --name bigcolor",
        ("BigColor is given the true class label at test time (colorize.py)", "outputs at the original size, saved "
         "as JPEG", "classification accuracy is a missing value in colorbench (no such metric yet)"),
        _NOT_READ),
    PublishedTable(
        "ColorFormer (Ji et al., ECCV 2022)", "the quantitative comparison table", ("ImageNet val50k", "COCO-Stuff",
                                                                                     "ADE20K"),
        ("FID", "CF", "ΔCF", "PSNR"), "ddcolor-imagenet-val50k / ddcolor-cocostuff / ddcolor-ade20k (DDColor "
                                      "follows ColorFormer's resize to 256, piddnad/DDColor#9)",
        "colorbench evaluate PRED_DIR --protocol ddcolor-imagenet-val50k --target IMAGENET_VAL_DIR --name colorformer",
        ("ColorFormer's colourfulness filter (jixiaozhong/ColorFormer metric/colorful.py, see metrics/README.md)",),
        _NOT_READ),
    PublishedTable(
        "ColTran (Kumar et al., ICLR 2021)", "the ImageNet FID table", ("ImageNet val (5,000)",), ("FID",),
        "coltran-imagenet-val5k",
        "colorbench evaluate PRED_DIR --protocol coltran-imagenet-val5k --target IMAGENET_VAL_DIR --name coltran "
        "(the folder must hold the reference images val 10,001-15,000 too)",
        ("disjoint reference (5,000 colorized vs 5,000 other real images)", "TFDS shard-interleaved order vs "
         "file-name order", "TF-GAN FID vs pytorch-fid", "Inception input x/128 − 1 vs x/127.5 − 1"),
        _NOT_READ),
    PublishedTable(
        "DISCO (Xia et al., SIGGRAPH Asia 2022, 'Disentangled Image Colorization via Global Anchors')",
        "the quantitative comparison table", ("ImageNet val", "COCO-Stuff"), ("FID", "CF", "PSNR"),
        "no protocol pinned yet: DISCO's evaluation code was not read here",
        "colorbench evaluate PRED_DIR --protocol ddcolor-imagenet-val50k --target DIR (nearest available; the "
        "conventions are not DISCO's until its code is read)",
        ("unknown: DISCO's resize, FID backbone and CF formula were not read",),
        _NOT_READ),
)


def table_rows() -> list[dict[str, Any]]:
    """The table as plain dicts (``colorbench reproduce --list``, the README)."""
    return [{"paper": t.paper, "table": t.table, "datasets": list(t.datasets), "metrics": list(t.metrics),
             "protocol": t.protocol, "reproduce": t.reproduce, "gap": list(t.gap), "values": t.values_status}
            for t in PUBLISHED_TABLES]


# --- the DDColor recipe -------------------------------------------------------------------------------------------
#: Paper-scale test sets: (label, protocol, image-folder path under --data-root).
DDCOLOR_SETS = (
    ("ImageNet val5k", "ct2-imagenet-val5k", "imagenet-val"),
    ("ImageNet val50k", "ddcolor-imagenet-val50k", "imagenet-val"),
    ("COCO-Stuff val", "ddcolor-cocostuff", "coco-stuff-val"),
    ("ADE20K val", "ddcolor-ade20k", "ade20k-val"),
)
#: The two inference settings compared on every set: (row label, preset).
DDCOLOR_SETTINGS = (("DDColor-L, paper input 256", "paper"),
                    ("DDColor-L, released pipeline 512 + nearest ab", "paper-512"))
DDCOLOR_METRICS = (("FID", "fid"), ("CF", "colorfulness"), ("ΔCF", "delta_colorfulness"), ("PSNR", "psnr"))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def ddcolor_recipe():
    """The ``ddcolor-table1`` recipe (see the module docstring)."""
    from colorbench.engine.recipe_types import Measure, Recipe, Scale, Stage

    paper_stages, quick_stages, stage_of, measures = [], [], {}, []
    for label, protocol, folder in DDCOLOR_SETS:
        for row, preset in DDCOLOR_SETTINGS:
            key = f"{label} / {row}"
            stage = _slug(key)
            stage_of[key] = stage
            paper_stages.append(Stage(stage, ("ddcolor",), "image-folder", preset, (("path", folder),),
                                      metrics=tuple(k for _, k in DDCOLOR_METRICS), protocol=protocol))
            measures += [Measure(key, row, metric, "ddcolor", k) for metric, k in DDCOLOR_METRICS]
    quick_stages.append(Stage("photos", ("ddcolor",), "photos", "quick", (("size", 64), ("train_per_photo", 1),
                                                                      ("test_per_photo", 2)),
                              metrics=("psnr", "colorfulness", "delta_colorfulness")))
    quick_map = {k: "photos" for k in stage_of}
    note = ("the paper's test sets through the image-folder loader: under --data-root, <path>/test/<any class>/ holds "
            "the test images (file names as released: ILSVRC2012_val_*, COCO val2017 ids, ADE_val_*) and "
            "<path>/train/<same class>/ at least one image (nothing is trained); each protocol selects its test "
            "images and resizes them; weights: colorbench weights fetch ddcolor-paper inception-v3-1a9a5a14")
    return Recipe(
        "ddcolor-table1", "DDColor's released paper model on its Table 1 test sets, at input 256 and at 512 (released "
        "pipeline)", "DDColor (ICCV 2023)", "Table 1 (values not entered: see colorbench.engine.published)",
        "each test set under its pinned protocol (colorbench list protocols); the same weights (ddcolor_paper.pth) "
        "at the paper's 256 input and the released pipeline's 512 input with nearest ab upsampling",
        tuple(measures), (),
        {"paper": Scale(tuple(paper_stages), (0,), stage_of, note=note),
         "quick": Scale(tuple(quick_stages), (0,), quick_map,
                        note="quick scale: built-in photos, DDColor-T (ddcolor_paper_tiny.pth) at 64 px: checks the "
                             "pipeline only; without the weights file the row fails naming it")})


# --- what a recipe needs ------------------------------------------------------------------------------------------
def missing_inputs(recipe: Any, scale: str, data_root: str | None = None) -> list[str]:
    """The inputs of ``recipe`` at ``scale`` that are not on this machine: weights files of its methods (under
    each stage's preset) and of its protocols' metrics, and dataset folders; one line each, saying where to put
    it. Empty when everything is there."""
    from colorbench.methods import METHODS
    from colorbench.engine.protocols import get_protocol
    from colorbench.engine.recipe_types import BUILTIN_DATASETS

    lines: list[str] = []
    for stage in recipe.scale(scale).stages:
        for method in stage.methods:
            reason = METHODS.get(method).unavailable_reason(stage.preset)
            if reason:
                lines.append(f"stage {stage.name}: {reason}")
        _, missing = get_protocol(getattr(stage, "protocol", "colorbench")).build_metrics(stage.metrics)
        lines += [f"stage {stage.name}: metric {name}: {why}" for name, why in missing.items()]
        if stage.dataset not in BUILTIN_DATASETS:
            root = Path(data_root) if data_root else None
            path = dict(stage.dataset_options).get("path", "")
            folder = (root / path) if root is not None else None
            if folder is None:
                lines.append(f"stage {stage.name}: dataset {stage.dataset}: no --data-root given (the folder "
                             f"'{path}' under it holds the test images)")
            elif not folder.is_dir():
                lines.append(f"stage {stage.name}: dataset {stage.dataset}: no folder {folder}")
    return list(dict.fromkeys(lines))
