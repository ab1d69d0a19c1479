"""The CelebA loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, _dist_version,
    _tv, diagnose_md5, require)


# ---------------------------------------------------------------------------------------------------------------
# celeba (torchvision.datasets.CelebA)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CelebAConfig(StandardConfig):
    """CelebA (aligned and cropped faces) options.

    Attributes:
        test_split: the official partition used for test: ``test`` or ``valid``.
        label_attr: a CelebA attribute (e.g. ``Male``) giving a binary image label; empty: label 0 for all.
    """

    size: int = 128  # colorbench's choice: the aligned faces are 178x218; the paper gives no size
    test_split: str = "test"
    label_attr: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_split not in ("test", "valid"):
            raise ValueError(f"celeba: test_split must be 'test' or 'valid', got {self.test_split!r}")


@register_dataset("celeba")
class CelebA(StandardDataset):
    """CelebA aligned faces ``celeba/img_align_celeba/*.jpg`` with the official partition, read by torchvision CelebA."""

    name: ClassVar[str] = "celeba"
    description: ClassVar[str] = "CelebA aligned faces (official train / test partition; subsets with n_train/n_test)"
    Config: ClassVar[type] = CelebAConfig

    def plan(self, root: Path) -> Plan:
        cfg: CelebAConfig = self.config
        tvd = _tv()
        C = tvd.CelebA
        base = root / C.base_folder
        txt = [(base / f, md5) for _, md5, f in C.file_list if not f.endswith(".zip")]
        source = ("https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive; download=true needs the gdown "
                  "package): " + ", ".join(f"{f} md5 {m}" for _, m, f in C.file_list))
        if cfg.download:
            C(str(root), split="train", download=True)
        layout = f"  {base}/img_align_celeba/NNNNNN.jpg\n" + "\n".join(f"  {f}" for f, _ in txt)
        hint = "the data root seems to be the celeba folder itself; pass its parent" \
            if (root / "img_align_celeba").is_dir() else ""
        require(self.name, root, [base / "img_align_celeba"] + [f for f, _ in txt], layout, source, hint)
        splits, class_names = {}, ["face"]
        for split, part in (("train", "train"), ("test", cfg.test_split)):
            try:
                ds = C(str(root), split=part, target_type=["attr"], download=False)
            except RuntimeError as exc:
                raise diagnose_md5(self.name, txt, source, exc) from exc
            names = [a for a in ds.attr_names if a]
            if cfg.label_attr:
                if cfg.label_attr not in names:
                    raise ValueError(f"celeba: unknown attribute {cfg.label_attr!r}; attributes are {names}")
                labels = ds.attr[:, names.index(cfg.label_attr)].tolist()
                class_names = [f"not {cfg.label_attr}", cfg.label_attr]
            else:
                labels = [0] * len(ds.filename)
            paths = [base / "img_align_celeba" / f for f in ds.filename]
            splits[split] = SplitPlan(part, class_names=class_names, ids=list(ds.filename), labels=labels, paths=paths)
        for sp in splits.values():
            sp.class_names = class_names
        info = {
            "source": {"files_md5": {f: m for _, m, f in C.file_list}, "images": "img_align_celeba (aligned & cropped)"},
            "integrity": f"torchvision {_dist_version('torchvision')} CelebA checks the md5 of the five annotation "
                         f"files at every load (not of the images)",
            "split": {"train": "train (list_eval_partition.txt = 0)", "test": cfg.test_split},
            "label": f"attribute {cfg.label_attr} (1 = present)" if cfg.label_attr else "none (0 for every image)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[f for f, _ in txt], info=info)
