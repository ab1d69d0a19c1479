"""The your own image folders loaders (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, StandardConfig, StandardDataset, _check_fraction,
    _class_folder, _files_plan, _stratified_split, require)


# ---------------------------------------------------------------------------------------------------------------
# image-folder (torchvision.datasets.ImageFolder)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFolderConfig(StandardConfig):
    """A user's own images in class sub-folders.

    Attributes:
        path: the folder (absolute, or relative to the data root; empty: the data root itself). With ``train/``
            and ``test/`` sub-folders (each holding class folders) those are the splits; otherwise the class
            folders are split per class with ``test_fraction`` and ``split_seed``.
        test_fraction: fraction of each class held out for test when there is no train/test layout.
        split_seed: seed of that split.
    """

    path: str = ""
    test_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction(self.test_fraction, "test_fraction")


@register_dataset("image-folder")
class ImageFolder(StandardDataset):
    """Generic ``<path>/<class>/<image>`` (or ``<path>/{train,test}/<class>/<image>``), scanned by torchvision ImageFolder."""

    name: ClassVar[str] = "image-folder"
    description: ClassVar[str] = "your own images in class folders (train/ and test/, or a seeded per-class split)"
    Config: ClassVar[type] = ImageFolderConfig

    def raw_folders(self) -> list[str]:
        """``path`` (the whole data root when empty).

        Raises:
            ValueError: ``path`` is absolute (it cannot be under a storage URI).
        """
        if Path(self.config.path).is_absolute():
            raise ValueError(f"{self.name}: option path={self.config.path} is absolute; with --data-root as a "
                             "storage URI give path relative to it")
        return [self.config.path]

    def plan(self, root: Path) -> Plan:
        cfg: ImageFolderConfig = self.config
        base = (root / cfg.path) if cfg.path else root
        layout = f"  {base}/<class>/<image>   or   {base}/train/<class>/<image> and {base}/test/<class>/<image>"
        require(self.name, root, [base], layout, "your own images")
        if (base / "train").is_dir() and (base / "test").is_dir():
            train_s, classes = _class_folder(self.name, base / "train", layout)
            test_s, test_classes = _class_folder(self.name, base / "test", layout)
            unknown = sorted(set(test_classes) - set(classes))
            if unknown:
                raise ValueError(f"{self.name}: {base / 'test'} has class folders {unknown} that {base / 'train'} lacks")
            remap = [classes.index(c) for c in test_classes]
            test_s = [(p, remap[c]) for p, c in test_s]
            train = _files_plan("train", train_s, np.arange(len(train_s)), classes, base)
            test = _files_plan("test", test_s, np.arange(len(test_s)), classes, base)
            split = {"rule": "the train/ and test/ folders"}
        else:
            samples, classes = _class_folder(self.name, base, layout)
            tr, te = _stratified_split([c for _, c in samples], len(classes), cfg.test_fraction, cfg.split_seed,
                                       self.name, classes)
            train = _files_plan("train", samples, tr, classes, base)
            test = _files_plan("test", samples, te, classes, base)
            split = {"rule": "per class, a seeded random test_fraction (at least 1 image) is test",
                     "test_fraction": cfg.test_fraction, "seed": cfg.split_seed}
        info = {"source": {"path": str(base)}, "integrity": "identified by the sha256 of the decoded splits",
                "split": split, "label": "class folder name"}
        return Plan(train=train, test=test, source_files=[], info=info)
