"""Loaders for the standard datasets of the colorization papers, from their official on-disk formats.

Registered: ``cifar10``, ``ucmerced``, ``cyclegan-folder``, ``imagenet-val``, ``voc-seg``, ``flowers102``,
``celeba``, ``places365`` and ``image-folder``. Where torchvision has a dataset class (CIFAR10, Flowers102,
CelebA, Places365, VOCSegmentation, ImageFolder, ImageNet) it is used to read the official layout and label
files, to check the official md5 checksums it carries and, only with the ``download`` option, to download;
colorbench adds what it lacks (UC Merced, CycleGAN folders, the ImageNet-val protocol), the named resize/crop
policies, corrupt-file handling and the decode-once cache (:mod:`colorbench.datasets.cache`).

Every loader takes the options of :class:`StandardConfig`. The data root comes from the ``data_root`` option
(CLI ``--data-root``) or the environment variable ``COLORBENCH_DATA_ROOT``. When files are missing the error
lists the missing paths, the expected layout and where to get the files (URL and checksum). Each load records
in ``DatasetSplits.info`` the dataset, its source version and checksums, the split, sizes, the resize policy,
subset seeds, skipped corrupt files and a sha256 of the decoded splits.

Layout: :mod:`.pipeline` (options, plan, decode, cache: what every loader shares) and one module per
loader family (:mod:`.cifar`, :mod:`.ucmerced`, :mod:`.cyclegan`, :mod:`.imagenet`, :mod:`.voc`, :mod:`.flowers`,
:mod:`.celeba`, :mod:`.places`, :mod:`.folder`); importing this package registers them all, and every name of
the former single module is importable from here.
"""

from __future__ import annotations

from colorbench.datasets.standard.pipeline import (DATA_ROOT_ENV, VOC_CLASSES, _MAX_LISTED, resolve_data_root,
    _dist_version, _tv, StandardConfig, _NOT_IN_KEY, SplitPlan, Plan, subset_index, missing_files_error, require,
    diagnose_md5, StandardDataset, _dominant_object, _image_files, _class_folder, _stratified_split, _check_fraction,
    _files_plan)  # noqa: F401
from colorbench.datasets.standard.cifar import (Cifar10Config, Cifar10)  # noqa: F401
from colorbench.datasets.standard.ucmerced import (UCMercedConfig, UCMerced, UCMERCED_URL)  # noqa: F401
from colorbench.datasets.standard.cyclegan import (CycleGANConfig, CycleGANFolder, CYCLEGAN_URL)  # noqa: F401
from colorbench.datasets.standard.imagenet import (ImageNetValConfig, ImageNetVal)  # noqa: F401
from colorbench.datasets.standard.voc import (VOCSegConfig, VOCSeg)  # noqa: F401
from colorbench.datasets.standard.flowers import (Flowers102Config, Flowers102, _FLOWERS_SPLITS)  # noqa: F401
from colorbench.datasets.standard.celeba import (CelebAConfig, CelebA)  # noqa: F401
from colorbench.datasets.standard.places import (Places365Config, Places365)  # noqa: F401
from colorbench.datasets.standard.folder import (ImageFolderConfig, ImageFolder)  # noqa: F401

__all__ = [
    "DATA_ROOT_ENV",
    "VOC_CLASSES",
    "StandardConfig",
    "StandardDataset",
    "resolve_data_root",
    "Cifar10", "UCMerced", "CycleGANFolder", "ImageNetVal", "VOCSeg", "Flowers102", "CelebA", "Places365",
    "ImageFolder",
]
