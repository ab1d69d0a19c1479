"""The one sample format of every colorbench dataset, and the dataset interface.

A dataset is decoded once into compact uint8 tensors (:class:`ImageSet`), so an epoch never decodes an image
again. Batches (:class:`Batch`) are made from those tensors on the method's device: RGB as float in [0, 1] and
the grey input under the run's grey convention (``colorbench.core.color``), computed identically for every method.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import torch
from torch import Tensor

from colorbench.core.color import rgb_to_grey
from colorbench.core.grey import Grey
from colorbench.datasets.shards import ShardedRows

#: Mask value for pixels that belong to no class (as in Pascal VOC's boundary label).
IGNORE_INDEX = 255


@dataclass
class Batch:
    """A batch given to methods. ``gray`` is the only input a method may colorize from."""

    gray: Tensor  # (B, 1, H, W) float in [0, 1], under `grey_convention`
    rgb: Tensor  # (B, 3, H, W) float in [0, 1], the real colour image (target)
    labels: Tensor  # (B,) int64 image-level label
    ids: list[str]
    masks: Tensor | None = None  # (B, H, W) int64 per-pixel class, IGNORE_INDEX where unknown
    grey_convention: Grey = field(kw_only=True)  # the convention `gray` was computed under (required)
    #: False for unpaired batches: ``gray`` (domain A) and ``rgb`` (domain B) then come from different images
    #: (``ids``, ``labels`` and ``masks`` describe the grey images; ``rgb_ids`` the colour ones).
    paired: bool = True
    rgb_ids: list[str] | None = None

    def __len__(self) -> int:
        return self.gray.shape[0]


@dataclass
class ImageSet:
    """One split of a dataset, decoded once into uint8 tensors.

    ``rgb`` and ``masks`` are tensors, or :class:`~colorbench.datasets.shards.ShardedRows` when the cache keeps a
    large split in shards: both are indexed the same way (``rgb[index]`` is a new tensor), and a subset of a
    sharded set is an index over the same shards, never a copy.

    Attributes:
        rgb: ``(N, 3, H, W)`` uint8.
        labels: ``(N,)`` int64 image-level class (e.g. the source photo, the object class).
        ids: a stable id per image (file name, source and crop position, ...).
        class_names: names of the image-level labels.
        masks: optional ``(N, H, W)`` uint8 per-pixel class, :data:`IGNORE_INDEX` where unknown.
        mask_class_names: names of the per-pixel classes (required when ``masks`` is given).
    """

    rgb: Tensor | ShardedRows
    labels: Tensor
    ids: list[str]
    class_names: list[str]
    masks: Tensor | ShardedRows | None = None
    mask_class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.rgb.dtype != torch.uint8 or self.rgb.dim() != 4 or self.rgb.shape[1] != 3:
            raise ValueError(f"ImageSet.rgb must be uint8 (N, 3, H, W), got {self.rgb.dtype} {tuple(self.rgb.shape)}")
        n = self.rgb.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(f"ImageSet.labels must have shape ({n},), got {tuple(self.labels.shape)}")
        self.labels = self.labels.long()
        if len(self.ids) != n:
            raise ValueError(f"ImageSet.ids has {len(self.ids)} entries for {n} images")
        if self.masks is not None:
            if self.masks.shape != (n, *self.rgb.shape[2:]):
                raise ValueError(f"ImageSet.masks must have shape {(n, *self.rgb.shape[2:])}, got {tuple(self.masks.shape)}")
            if self.mask_class_names is None:
                raise ValueError("ImageSet.masks given without mask_class_names")

    def __len__(self) -> int:
        return self.rgb.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.rgb.shape[2:])  # type: ignore[return-value]

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One sample in the common format: grey (BT.601 luma, float: a fixed convention for browsing a set, not a
        run's input, which :meth:`make_batch` computes under the run's), rgb (uint8), label, optional mask, id."""
        rgb = self.rgb[i]
        return {
            "gray": rgb_to_grey(rgb.float() / 255.0, Grey.BT601),
            "rgb": rgb,
            "label": int(self.labels[i]),
            "mask": None if self.masks is None else self.masks[i],
            "id": self.ids[i],
        }

    def sha256(self) -> str:
        """sha256 over rgb, labels and masks (if any), each prefixed by key, dtype and shape.

        Equal digests mean the same pixels, labels and masks in the same order (ids and class names are not
        hashed). Same digest as ``colorbench.datasets.builtin.imageset_sha256``.
        """
        import hashlib

        h = hashlib.sha256()
        for key, t in (("rgb", self.rgb), ("labels", self.labels), ("masks", self.masks)):
            if t is None:
                continue
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
            if isinstance(t, ShardedRows):
                for chunk in t.chunks():  # the same bytes in the same order as the unsharded array
                    h.update(chunk.numpy())
                continue
            t = t.detach().cpu().contiguous()
            h.update(t.numpy())  # the array's buffer (C-contiguous), no copy
        return h.hexdigest()

    def subset(self, index: Tensor | list[int]) -> "ImageSet":
        """The images at ``index``, in that order (sharded rows stay an index over the shards)."""
        index = torch.as_tensor(index, dtype=torch.long)

        def pick(t):
            return t.take(index) if isinstance(t, ShardedRows) else t[index]

        return dataclasses.replace(
            self,
            rgb=pick(self.rgb),
            labels=self.labels[index],
            ids=[self.ids[i] for i in index.tolist()],
            masks=None if self.masks is None else pick(self.masks),
        )

    def make_batch(self, index: Tensor, device: torch.device | str = "cpu", *, grey_convention: Grey) -> Batch:
        """Convert the images at ``index`` to a float :class:`Batch` on ``device``, grey under ``grey_convention``."""
        rgb = self.rgb[index].to(device, non_blocking=True).float().div_(255.0)
        masks = None if self.masks is None else self.masks[index].to(device).long()
        return Batch(
            gray=rgb_to_grey(rgb, grey_convention),
            rgb=rgb,
            labels=self.labels[index].to(device),
            ids=[self.ids[i] for i in index.tolist()],
            masks=masks,
            grey_convention=grey_convention,
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        grey_convention: Grey,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Iterate over the set in batches (shuffled with ``generator`` if ``shuffle``)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - (n % batch_size) if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            yield self.make_batch(order[start : start + batch_size], device, grey_convention=grey_convention)


@dataclass
class DatasetSplits:
    """A loaded dataset: its train and test splits and everything that identifies it in a record."""

    name: str
    train: ImageSet
    test: ImageSet
    info: dict[str, Any] = field(default_factory=dict)  # parameters, sources, split policy, checksums

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "image_size": list(self.train.image_size),
            "classes": list(self.train.class_names),
            "has_masks": self.train.masks is not None,
            **self.info,
        }


class DatasetOptionError(TypeError, ValueError):
    """A dataset option of the wrong type (``size=abc``): a ValueError to callers that report bad arguments,
    still a TypeError to code that caught the old error."""


class Dataset(ABC):
    """A named dataset builder. Subclasses define a frozen ``Config`` dataclass and :meth:`load`.

    ``Dataset(**options)`` validates the options against ``Config``; :meth:`load` returns the decoded splits.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(self, **options: Any) -> None:
        fields = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(f"dataset {self.name!r}: unknown option(s) {unknown}; options are {sorted(fields)}")
        try:
            self.config = self.Config(**options)
        except TypeError as exc:  # an option of the wrong type (e.g. size=abc): a bad argument, not a crash
            raise DatasetOptionError(f"dataset {self.name!r}: {exc} (set it with --dataset-option KEY=VALUE; see "
                             f"`colorbench list datasets` for the options and their defaults)") from None

    @abstractmethod
    def load(self) -> DatasetSplits:
        """Decode the dataset into uint8 tensors (once) and return its splits."""

    @classmethod
    def options(cls) -> dict[str, Any]:
        """Option names and their defaults (for ``colorbench list datasets``)."""
        return {f.name: f.default for f in dataclasses.fields(cls.Config)}
