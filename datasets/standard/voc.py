"""The Pascal VOC segmentation loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, VOC_CLASSES,
    _tv, missing_files_error, require)


# ---------------------------------------------------------------------------------------------------------------
# voc-seg (torchvision.datasets.VOCSegmentation)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VOCSegConfig(StandardConfig):
    """Pascal VOC 2012 segmentation options (standard partitions: train 1,464 / val 1,449; 256 x 256 as in the thesis).

    Attributes:
        train_split: VOC image set used for training (``train`` or ``trainval``).
        test_split: VOC image set used for test (``val``).
    """

    resize: str = "resize"
    train_split: str = "train"
    test_split: str = "val"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_split not in ("train", "trainval") or self.test_split not in ("val",):
            raise ValueError(f"voc-seg: train_split must be 'train' or 'trainval' and test_split 'val', got "
                             f"{self.train_split!r}, {self.test_split!r}")


@register_dataset("voc-seg")
class VOCSeg(StandardDataset):
    """Pascal VOC 2012 segmentation with per-pixel masks (255 = boundary/ignore), read by torchvision VOCSegmentation."""

    name: ClassVar[str] = "voc-seg"
    description: ClassVar[str] = "Pascal VOC 2012 segmentation (21 classes, masks; train 1464 / val 1449)"
    Config: ClassVar[type] = VOCSegConfig
    label_from_mask: ClassVar[bool] = True

    def plan(self, root: Path) -> Plan:
        cfg: VOCSegConfig = self.config
        tvd = _tv()
        from torchvision.datasets.voc import DATASET_YEAR_DICT

        meta = DATASET_YEAR_DICT["2012"]
        voc = root / meta["base_dir"]
        source = f"{meta['url']} (md5 {meta['md5']})"
        if cfg.download:
            tvd.VOCSegmentation(str(root), year="2012", image_set=cfg.train_split, download=True)
        sets = voc / "ImageSets" / "Segmentation"
        split_files = [sets / f"{s}.txt" for s in (cfg.train_split, cfg.test_split)]
        layout = (f"  {voc}/JPEGImages/<id>.jpg\n  {voc}/SegmentationClass/<id>.png   (palette PNG of class "
                  f"indices 0..20, 255 = boundary)\n  {voc}/ImageSets/Segmentation/{{train,val,trainval}}.txt")
        hint = "the data root seems to be VOCdevkit/ or VOC2012/ itself; pass the folder that contains VOCdevkit/" \
            if (root / "VOC2012").is_dir() or (root / "JPEGImages").is_dir() else ""
        require(self.name, root, [voc / "JPEGImages", voc / "SegmentationClass", *split_files], layout, source, hint)
        splits = {}
        for split, image_set in (("train", cfg.train_split), ("test", cfg.test_split)):
            ds = tvd.VOCSegmentation(str(root), year="2012", image_set=image_set, download=False)
            paths, masks = [Path(p) for p in ds.images], [Path(p) for p in ds.masks]
            missing = [p for pair in zip(paths, masks) for p in pair if not p.is_file()]
            if missing:
                raise missing_files_error(self.name, root, missing, layout, source,
                                          f"these ids are listed in {sets / (image_set + '.txt')}")
            splits[split] = SplitPlan(image_set, class_names=list(VOC_CLASSES), ids=[p.stem for p in paths],
                                      labels=[0] * len(paths), paths=paths, mask_paths=masks)
        info = {
            "source": {"url": meta["url"], "archive_md5": meta["md5"], "year": "2012"},
            "integrity": "torchvision checks the archive's md5 when it downloads; extracted files are identified by "
                         "the sha256 of the decoded splits",
            "split": {"train": cfg.train_split, "test": cfg.test_split},
            "label": "image label = the non-background class with most mask pixels (0 when only background); masks "
                     "index mask_class_names, 255 = boundary/ignore (resized with nearest neighbour)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=split_files, info=info,
                    mask_class_names=list(VOC_CLASSES))
