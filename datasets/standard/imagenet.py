"""The ImageNet val loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from colorbench.datasets.cache import relative
from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, _class_folder,
    _image_files, _tv, require)


# ---------------------------------------------------------------------------------------------------------------
# imagenet-val (the thesis protocol; torchvision's ImageNet class only to unpack the official tarballs)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageNetValConfig(StandardConfig):
    """ILSVRC2012 validation protocol of Tarrés (2021): 50 images per class for training, 10 per class for test.

    Attributes:
        path: the ImageNet folder under the data root (holding ``val/<wnid>/``, optionally ``train/<wnid>/`` and
            torchvision's ``meta.bin``).
        train_per_class: validation images per class used for training (seeded choice).
        test_per_class: test images per class (seeded choice).
        test_from: ``train`` (from the ILSVRC2012 training images, the thesis' wording) or ``val`` (held out from the
            validation images, disjoint from the training choice; needs train_per_class + test_per_class <= 50).
        split_seed: seed of both choices.
    """

    resize: str = "resize"
    path: str = "imagenet"
    train_per_class: int = 50
    test_per_class: int = 10
    test_from: str = "train"
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_from not in ("train", "val"):
            raise ValueError(f"option 'test_from' must be 'train' or 'val', got {self.test_from!r}")
        for name in ("train_per_class", "test_per_class"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"option {name!r} must be an int >= 1, got {v!r}")


@register_dataset("imagenet-val")
class ImageNetVal(StandardDataset):
    """ImageNet (ILSVRC2012) validation images with labels in class folders ``val/<wnid>/*.JPEG``.

    This is the layout torchvision's ``ImageNet(root, split="val")`` writes when it unpacks the official
    ``ILSVRC2012_img_val.tar`` with ``ILSVRC2012_devkit_t12.tar.gz`` (it does so here when those tarballs are in the
    folder and ``val/`` is not), and the one the common ``valprep.sh`` script makes.
    """

    name: ClassVar[str] = "imagenet-val"
    description: ClassVar[str] = "ILSVRC2012 val protocol: 50/class train, 10/class test, 256x256 (Tarres 2021)"
    Config: ClassVar[type] = ImageNetValConfig

    def plan(self, root: Path) -> Plan:
        cfg: ImageNetValConfig = self.config
        tvd = _tv()
        base = root / cfg.path
        val = base / "val"
        layout = (f"  {val}/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG   (1000 class folders named by WordNet id)\n"
                  f"  {base}/train/<wnid>/*.JPEG   (only with test_from=train)\n"
                  f"  {base}/meta.bin   (optional: class names, written by torchvision from the devkit)\n"
                  f"  or, instead of val/: {base}/ILSVRC2012_img_val.tar and {base}/ILSVRC2012_devkit_t12.tar.gz "
                  f"(unpacked by torchvision)")
        source = ("https://image-net.org/download-images.php (login required; cannot be downloaded automatically): "
                  "ILSVRC2012_img_val.tar md5 29b22e2961454d5413ddabcf34fc5622, ILSVRC2012_devkit_t12.tar.gz md5 "
                  "fa75699e90414af021442c21a62c3abf")
        tars = [base / "ILSVRC2012_img_val.tar", base / "ILSVRC2012_devkit_t12.tar.gz"]
        if not val.is_dir() and all(t.is_file() for t in tars):
            tvd.ImageNet(str(base), split="val")  # md5-checks and unpacks the official tarballs into val/<wnid>/
        required = [val] + ([base / "train"] if cfg.test_from == "train" else [])
        hint = ("the test split of this protocol comes from train/ by default; with only the validation images "
                "pass test_from=val (and train_per_class=40)") if val.is_dir() else ""
        require(self.name, root, required, layout, source, hint)
        samples, wnids = _class_folder(self.name, val, layout)
        names = list(wnids)
        if (base / "meta.bin").is_file():
            wnid_to_classes = tvd.imagenet.load_meta_file(str(base))[0]
            names = [wnid_to_classes.get(w, (w,))[0] for w in wnids]
        by_class = [[p for p, c in samples if c == k] for k in range(len(wnids))]
        need = cfg.train_per_class + (cfg.test_per_class if cfg.test_from == "val" else 0)
        train_items, test_items = [], []
        for k, files in enumerate(by_class):
            if len(files) < need:
                raise ValueError(f"{self.name}: {val / wnids[k]} has {len(files)} images, the protocol needs {need} "
                                 f"(train_per_class={cfg.train_per_class}"
                                 + (f" + test_per_class={cfg.test_per_class} with test_from=val)" if cfg.test_from == "val" else ")"))
            rng = np.random.default_rng([cfg.split_seed, k])
            pick = rng.permutation(len(files))
            train_items += [(files[i], k) for i in sorted(pick[: cfg.train_per_class])]
            if cfg.test_from == "val":
                test_items += [(files[i], k) for i in sorted(pick[cfg.train_per_class : need])]
        if cfg.test_from == "train":
            train_dir = base / "train"
            for k, w in enumerate(wnids):
                folder = train_dir / w
                files = _image_files(folder) if folder.is_dir() else []
                if len(files) < cfg.test_per_class:
                    raise ValueError(f"{self.name}: {folder} has {len(files)} images, test_per_class needs "
                                     f"{cfg.test_per_class}")
                rng = np.random.default_rng([cfg.split_seed, k, 1])
                test_items += [(files[i], k) for i in sorted(rng.choice(len(files), cfg.test_per_class, replace=False))]
        mk = lambda nm, items: SplitPlan(nm, class_names=names, ids=[relative(p, base) for p, _ in items],  # noqa: E731
                                         labels=[k for _, k in items], paths=[Path(p) for p, _ in items])
        info = {
            "source": {"images": "ILSVRC2012 validation set (50,000 images, 50 per class)", "download": source},
            "integrity": "torchvision's ImageNet checks the official tarballs' md5 when it unpacks them; unpacked "
                         "folders are identified by the sha256 of the decoded splits",
            "split": {"train": f"{cfg.train_per_class} validation images per class (seeded)",
                      "test": f"{cfg.test_per_class} per class from {'train/' if cfg.test_from == 'train' else 'val/ (disjoint from train)'} (seeded)",
                      "seed": cfg.split_seed,
                      "protocol": "Tarres 2021: 50 val images per class for training, 10 per class test, 256x256"},
            "classes_found": len(wnids),
            "label": "ILSVRC2012 class (folder wnid; class names from meta.bin when present)",
        }
        return Plan(train=mk("val", train_items), test=mk(f"{cfg.test_from}", test_items), source_files=[], info=info)
