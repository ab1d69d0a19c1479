"""The CycleGAN folders loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.cache import relative
from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, _image_files,
    require)


# ---------------------------------------------------------------------------------------------------------------
# cyclegan-folder (no torchvision class)
# ---------------------------------------------------------------------------------------------------------------

CYCLEGAN_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"


@dataclass(frozen=True)
class CycleGANConfig(StandardConfig):
    """CycleGAN folder options.

    Attributes:
        name: the dataset folder under the data root (e.g. ``cezanne2photo``).
        side: ``A`` or ``B`` (one domain: trainX -> train, testX -> test) or ``both`` (both domains, label = domain:
            0 = A, 1 = B).
    """

    name: str = "cezanne2photo"
    side: str = "A"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.side not in ("A", "B", "both"):
            raise ValueError(f"option 'side' must be 'A', 'B' or 'both', got {self.side!r}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"option 'name' must be a folder name like 'cezanne2photo', got {self.name!r}")


@register_dataset("cyclegan-folder")
class CycleGANFolder(StandardDataset):
    """A CycleGAN dataset folder ``<name>/{trainA,trainB,testA,testB}/`` (e.g. cezanne2photo: A = Cezanne paintings)."""

    name: ClassVar[str] = "cyclegan-folder"
    description: ClassVar[str] = "CycleGAN dataset layout trainA/trainB/testA/testB (one side, or both as domains)"
    Config: ClassVar[type] = CycleGANConfig

    def raw_folders(self) -> list[str]:
        """The split folders of ``name`` that ``side`` reads (``trainA``, ``testA``, ...)."""
        sides = ("A", "B") if self.config.side == "both" else (self.config.side,)
        return [f"{self.config.name}/{split}{s}" for split in ("train", "test") for s in sides]

    def plan(self, root: Path) -> Plan:
        cfg: CycleGANConfig = self.config
        base = root / cfg.name
        url = CYCLEGAN_URL.format(name=cfg.name)
        sides = ("A", "B") if cfg.side == "both" else (cfg.side,)
        folders = [base / f"{s}{x}" for s in ("train", "test") for x in sides]
        layout = f"  {base}/{{trainA,trainB,testA,testB}}/<image>.jpg"
        if cfg.download and not all(f.is_dir() for f in folders):
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(url, str(root), md5=None)
        hint = "the data root seems to be the dataset folder itself; pass its parent" if (root / "trainA").is_dir() else ""
        require(self.name, root, folders, layout, f"{url} (no official checksum is published)", hint)
        class_names = [f"domain {s}" for s in sides]
        splits = {}
        for split in ("train", "test"):
            paths, labels = [], []
            for k, s in enumerate(sides):
                found = _image_files(base / f"{split}{s}")
                if not found:
                    raise FileNotFoundError(f"{self.name}: no image files in {base / f'{split}{s}'}")
                paths += found
                labels += [k] * len(found)
            splits[split] = SplitPlan(name="+".join(f"{split}{s}" for s in sides), class_names=class_names,
                                      ids=[relative(p, base) for p in paths], labels=labels, paths=paths)
        info = {
            "source": {"url": url, "md5": None, "name": cfg.name},
            "integrity": "no official checksum exists; identify the data by the sha256 of the decoded splits",
            "split": {"train": [f"train{s}" for s in sides], "test": [f"test{s}" for s in sides], "side": cfg.side},
            "label": "domain (0 = A, 1 = B)" if cfg.side == "both" else f"0 (one domain: {cfg.side})",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[], info=info)
