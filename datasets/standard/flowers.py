"""The Flowers102 loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, _dist_version,
    _tv, diagnose_md5, require)


# ---------------------------------------------------------------------------------------------------------------
# flowers102 (torchvision.datasets.Flowers102)
# ---------------------------------------------------------------------------------------------------------------

_FLOWERS_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Flowers102Config(StandardConfig):
    """Oxford Flowers 102 options (official splits; ``train_split`` may be ``train+val``).

    Attributes:
        train_split: ``train``, ``val`` or ``train+val`` (official setid.mat splits).
        test_split: ``test`` or ``val``.
    """

    train_split: str = "train"
    test_split: str = "test"

    def __post_init__(self) -> None:
        super().__post_init__()
        tr = self.train_split.split("+")
        if not all(s in _FLOWERS_SPLITS for s in tr) or self.test_split not in _FLOWERS_SPLITS or self.test_split in tr:
            raise ValueError(f"flowers102: train_split must be train, val or train+val and test_split another "
                             f"official split, got {self.train_split!r}, {self.test_split!r}")


@register_dataset("flowers102")
class Flowers102(StandardDataset):
    """Oxford 102 Flowers: ``flowers-102/{jpg/, imagelabels.mat, setid.mat}``, read by torchvision Flowers102."""

    name: ClassVar[str] = "flowers102"
    description: ClassVar[str] = "Oxford 102 Flowers (official train/val/test splits from setid.mat)"
    Config: ClassVar[type] = Flowers102Config

    def plan(self, root: Path) -> Plan:
        cfg: Flowers102Config = self.config
        tvd = _tv()
        F = tvd.Flowers102
        base = root / "flowers-102"
        files = {k: (base / f, md5) for k, (f, md5) in F._file_dict.items()}
        source = "; ".join(f"{F._download_url_prefix}{f.name} (md5 {m})" for f, m in files.values())
        if cfg.download:
            F(str(root), split="train", download=True)
        layout = f"  {base}/jpg/image_NNNNN.jpg\n  {base}/imagelabels.mat\n  {base}/setid.mat"
        hint = "the data root seems to be the flowers-102 folder itself; pass its parent" if (root / "setid.mat").exists() else ""
        require(self.name, root, [base / "jpg", files["label"][0], files["setid"][0]], layout, source, hint)
        classes = list(getattr(F, "classes", [])) or [str(i) for i in range(102)]
        splits = {}
        for split, names in (("train", cfg.train_split.split("+")), ("test", [cfg.test_split])):
            paths, labels = [], []
            for s in names:
                try:
                    ds = F(str(root), split=s, download=False, loader=str)
                except RuntimeError as exc:
                    raise diagnose_md5(self.name, [files["label"], files["setid"]], source, exc) from exc
                for i in range(len(ds)):
                    p, y = ds[i]  # the loader returns the path: nothing is decoded here
                    paths.append(Path(p))
                    labels.append(int(y))
            splits[split] = SplitPlan(cfg.train_split if split == "train" else cfg.test_split, class_names=classes,
                                      ids=[p.name for p in paths], labels=labels, paths=paths)
        info = {
            "source": {"files_md5": {f.name: m for f, m in files.values()}, "url": F._download_url_prefix},
            "integrity": f"torchvision {_dist_version('torchvision')} Flowers102 checks the md5 of imagelabels.mat "
                         f"and setid.mat at every load",
            "split": {"train": cfg.train_split, "test": cfg.test_split, "rule": "official setid.mat splits"},
            "label": "flower class (imagelabels.mat, 0-based)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[files["label"][0], files["setid"][0]],
                    info=info)
