"""The Places365 loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.cache import relative
from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, _dist_version,
    _tv, diagnose_md5, require)


# ---------------------------------------------------------------------------------------------------------------
# places365 (torchvision.datasets.Places365)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Places365Config(StandardConfig):
    """Places365-Standard options: train = ``train-standard``, test = ``val`` (the test split has no labels).

    Attributes:
        small: the 256 x 256 images (``data_256_standard/``, ``val_256/``) instead of the large ones.
    """

    small: bool = True


@register_dataset("places365")
class Places365(StandardDataset):
    """Places365-Standard, read by torchvision Places365 (file lists with md5s; subsets via n_train / n_test)."""

    name: ClassVar[str] = "places365"
    description: ClassVar[str] = "Places365-Standard (train-standard / val; 365 scene classes; seeded subsets)"
    Config: ClassVar[type] = Places365Config

    def plan(self, root: Path) -> Plan:
        cfg: Places365Config = self.config
        tvd = _tv()
        P = tvd.Places365
        lists = [(root / P._CATEGORIES_META[0], P._CATEGORIES_META[1])] + \
            [(root / P._FILE_LIST_META[s][0], P._FILE_LIST_META[s][1]) for s in ("train-standard", "val")]
        archives = {s: P._IMAGES_META[(s, cfg.small)] for s in ("train-standard", "val")}
        source = (f"{P._BASE_URL}: {P._DEVKIT_META['standard'][0]} (md5 {P._DEVKIT_META['standard'][1]}), "
                  + ", ".join(f"{f} (md5 {m})" for f, m in archives.values()))
        if cfg.download:
            for s in ("train-standard", "val"):
                P(str(root), split=s, small=cfg.small, download=True, loader=str)
        sizes = "256" if cfg.small else "large"
        dirs = [root / f"data_{sizes}_standard", root / f"val_{sizes}"]
        layout = "\n".join(f"  {f}" for f, _ in lists) + "\n" + "\n".join(f"  {d}/..." for d in dirs)
        require(self.name, root, [f for f, _ in lists] + dirs, layout, source)
        splits, class_names = {}, None
        for split, s in (("train", "train-standard"), ("test", "val")):
            try:
                ds = P(str(root), split=s, small=cfg.small, download=False, loader=str)
            except RuntimeError as exc:
                raise diagnose_md5(self.name, lists, source, exc) from exc
            by_index = sorted(ds.class_to_idx.items(), key=lambda kv: kv[1])
            class_names = [c for c, _ in by_index]
            paths = [Path(p) for p, _ in ds.imgs]
            splits[split] = SplitPlan(s, class_names=class_names, ids=[relative(p, root) for p in paths],
                                      labels=[int(y) for _, y in ds.imgs], paths=paths)
        info = {
            "source": {"url": P._BASE_URL, "files_md5": {f.name: m for f, m in lists},
                       "archives_md5": {f: m for f, m in archives.values()}},
            "integrity": f"torchvision {_dist_version('torchvision')} Places365 checks the md5 of the category and "
                         f"file lists at every load (not of the images)",
            "split": {"train": "train-standard", "test": "val (official validation set; test has no labels)",
                      "small_images": cfg.small},
            "label": "scene class (categories_places365.txt index)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[f for f, _ in lists], info=info)
