"""The UC Merced loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, StandardConfig, StandardDataset, _check_fraction,
    _class_folder, _files_plan, _stratified_split, require)


# ---------------------------------------------------------------------------------------------------------------
# ucmerced (no torchvision class)
# ---------------------------------------------------------------------------------------------------------------

UCMERCED_URL = "http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip"


@dataclass(frozen=True)
class UCMercedConfig(StandardConfig):
    """UC Merced Land Use options: a stratified seeded 80/20 split (the SpyncoGan protocol), 256 x 256.

    Attributes:
        test_fraction: fraction of each class held out for test.
        split_seed: seed of the split (recorded).
    """

    resize: str = "resize"
    test_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction(self.test_fraction, "test_fraction")


@register_dataset("ucmerced")
class UCMerced(StandardDataset):
    """UC Merced Land Use: ``UCMerced_LandUse/Images/<class>/<class>NN.tif`` (21 classes x 100 images)."""

    name: ClassVar[str] = "ucmerced"
    description: ClassVar[str] = "UC Merced Land Use (21 classes of 256x256 aerial tifs), seeded 80/20 split"
    Config: ClassVar[type] = UCMercedConfig

    def raw_folders(self) -> list[str]:
        return ["UCMerced_LandUse/Images"]

    def plan(self, root: Path) -> Plan:
        cfg: UCMercedConfig = self.config
        images = root / "UCMerced_LandUse" / "Images"
        layout = f"  {images}/<class>/<class>NN.tif   (21 class folders, e.g. agricultural/agricultural00.tif)"
        source = f"{UCMERCED_URL} (no official checksum is published; colorbench records the sha256 of the decoded splits)"
        if cfg.download and not images.is_dir():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(UCMERCED_URL, str(root), md5=None)
        hint = "the data root seems to be the Images folder itself; pass the folder that contains UCMerced_LandUse/" \
            if (root / "agricultural").is_dir() else ""
        require(self.name, root, [images], layout, source, hint)
        samples, classes = _class_folder(self.name, images, layout)
        labels = [c for _, c in samples]
        train, test = _stratified_split(labels, len(classes), cfg.test_fraction, cfg.split_seed, self.name, classes)
        info = {
            "source": {"url": UCMERCED_URL, "md5": None},
            "integrity": "no official checksum exists; identify the data by the sha256 of the decoded splits",
            "split": {"rule": "per class, a seeded random test_fraction (at least 1 image) is test, the rest train "
                              "(SpyncoGan: random 80/20, no official split)",
                      "test_fraction": cfg.test_fraction, "seed": cfg.split_seed},
            "classes_found": len(classes),
            "label": "land-use class (folder name)",
        }
        return Plan(train=_files_plan("train", samples, train, classes, root),
                    test=_files_plan("test", samples, test, classes, root), source_files=[], info=info)
