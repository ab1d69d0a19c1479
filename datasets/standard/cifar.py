"""The CIFAR-10 loader (see :mod:`colorbench.datasets.standard`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorbench.datasets.registry import register_dataset
from colorbench.datasets.standard.pipeline import (Plan, SplitPlan, StandardConfig, StandardDataset, _dist_version,
    _tv, diagnose_md5, require)


# ---------------------------------------------------------------------------------------------------------------
# cifar10 (torchvision.datasets.CIFAR10)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cifar10Config(StandardConfig):
    """CIFAR-10 options (defaults: the native 32 x 32, no resizing; official 50,000 / 10,000 split)."""

    size: int = 32
    resize: str = "none"


@register_dataset("cifar10")
class Cifar10(StandardDataset):
    """CIFAR-10 from the official python pickle batches, read by ``torchvision.datasets.CIFAR10``."""

    name: ClassVar[str] = "cifar10"
    description: ClassVar[str] = "CIFAR-10, official python batches (50k train / 10k test, 32x32, 10 classes)"
    Config: ClassVar[type] = Cifar10Config

    def plan(self, root: Path) -> Plan:
        tvd = _tv()
        C = tvd.CIFAR10
        base = root / C.base_folder
        source = f"{C.url} (md5 {C.tgz_md5}), extracted into {root}"
        if self.config.download:
            C(str(root), train=True, download=True)
        files = [(base / f, md5) for f, md5 in C.train_list + C.test_list] + [(base / C.meta["filename"], C.meta["md5"])]
        layout = f"  {root}/{C.base_folder}/{{{', '.join(f.name for f, _ in files)}}}"
        hint = ""
        if not base.is_dir() and (root / "data_batch_1").exists():
            hint = f"the data root seems to be the {C.base_folder} folder itself; pass its parent folder"
        require(self.name, root, [f for f, _ in files], layout, source, hint)

        def arrays(train: bool):
            def load():
                try:
                    ds = C(str(root), train=train, download=False)
                except RuntimeError as exc:
                    raise diagnose_md5(self.name, files, source, exc) from exc
                split = "train" if train else "test"
                return ds.data, list(ds.targets), [f"{split}:{i}" for i in range(len(ds.data))], list(ds.classes)
            return load

        info = {
            "source": {"url": C.url, "archive_md5": C.tgz_md5,
                       "files_md5": {f.name: md5 for f, md5 in files}},
            "integrity": f"torchvision {_dist_version('torchvision')} CIFAR10 checks each file's md5 against the "
                         f"official list above when the splits are decoded",
            "split": {"train": "data_batch_1..5 (official)", "test": "test_batch (official)"},
            "label": "CIFAR-10 class (class_names from batches.meta)",
        }
        return Plan(train=SplitPlan("train", arrays=arrays(True)), test=SplitPlan("test", arrays=arrays(False)),
                    source_files=[f for f, _ in files], info=info)
