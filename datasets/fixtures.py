"""Write tiny copies of the standard datasets in their exact official on-disk formats (for tests and benchmarks).

Every writer puts files where the official archive puts them, in the official encoding (CIFAR python pickles
with ``batches.meta``, UC Merced 256x256 tifs, VOC palette PNG masks and ImageSets lists, Flowers102 ``.mat``
files via scipy.io, CelebA's space-separated annotation files, Places365 file lists, ...). The pixels are
seeded smooth random colour fields: they only need to be decodable, distinct and reproducible. The files cannot
match the official md5 checksums, so loaders that verify those (through torchvision) need the check bypassed in
tests (see ``tests/test_standard_datasets.py``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = [
    "random_image", "write_cifar10", "write_ucmerced", "write_cyclegan", "write_imagenet", "write_voc_seg",
    "write_flowers102", "write_celeba", "write_places365", "write_image_folder", "truncate_file", "CIFAR10_CLASSES",
]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field ``(height, width, 3)`` uint8 (a 4x4 random grid, bilinearly enlarged)."""
    grid = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.BILINEAR))


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def write_cifar10(root: Path, n_train: int = 50, n_test: int = 10, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` as the official python pickles.

    Each batch is a dict with ``batch_label``, ``labels``, ``data`` ((n, 3072) uint8, rows R then G then B planes
    of 32x32) and ``filenames``; ``n_train`` images are spread over the five training batches.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    sizes = [n_train // 5 + (1 if i < n_train % 5 else 0) for i in range(5)]
    batches = [(f"data_batch_{i + 1}", f"training batch {i + 1} of 5", n) for i, n in enumerate(sizes)]
    batches.append(("test_batch", "testing batch 1 of 1", n_test))
    for fname, label, n in batches:
        images = np.stack([random_image(rng, 32, 32) for _ in range(n)]) if n else np.zeros((0, 32, 32, 3), np.uint8)
        entry = {
            "batch_label": label,
            "labels": rng.integers(0, 10, n).tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(n, 3072),
            "filenames": [f"fixture_{fname}_{i}.png" for i in range(n)],
        }
        with open(base / fname, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": max(sizes), "label_names": CIFAR10_CLASSES, "num_vis": 3072}, f, protocol=2)
    return base


def write_ucmerced(root: Path, classes: Sequence[str] = ("agricultural", "beach", "forest"), per_class: int = 5,
                   seed: int = 0, size: tuple[int, int] = (256, 256)) -> Path:
    """``root/UCMerced_LandUse/Images/<class>/<class>NN.tif`` (uncompressed RGB tif, 256x256 by default)."""
    rng = np.random.default_rng(seed)
    images = Path(root) / "UCMerced_LandUse" / "Images"
    for c in classes:
        for i in range(per_class):
            _save(images / c / f"{c}{i:02d}.tif", random_image(rng, size[1], size[0]), format="TIFF")
    return images


def write_cyclegan(root: Path, name: str = "cezanne2photo", counts: dict[str, int] | None = None, seed: int = 0,
                   size: int = 256) -> Path:
    """``root/<name>/{trainA,trainB,testA,testB}/<n>.jpg`` as in the CycleGAN dataset zips."""
    counts = counts or {"trainA": 4, "trainB": 5, "testA": 2, "testB": 3}
    rng = np.random.default_rng(seed)
    base = Path(root) / name
    for folder, n in counts.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _save(base / folder / f"{i:05d}.jpg", random_image(rng, size, size), quality=90)
    return base


def write_imagenet(root: Path, wnids: Sequence[str] = ("n01440764", "n01443537"), val_per_class: int = 5,
                   train_per_class: int = 3, seed: int = 0, path: str = "imagenet", with_meta: bool = True) -> Path:
    """``root/<path>/val/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG``, ``train/<wnid>/<wnid>_N.JPEG`` and ``meta.bin``.

    This is the layout torchvision's ImageNet writes after unpacking the official tarballs; ``meta.bin`` holds
    ``(wnid_to_classes, val_wnids)`` saved with ``torch.save`` exactly as torchvision's ``parse_devkit_archive``.
    """
    import torch

    rng = np.random.default_rng(seed)
    base = Path(root) / path
    k = 0
    val_wnids = []
    for w in wnids:
        for _ in range(val_per_class):
            k += 1
            h, wd = rng.integers(200, 400, 2)
            _save(base / "val" / w / f"ILSVRC2012_val_{k:08d}.JPEG", random_image(rng, h, wd), quality=90)
            val_wnids.append(w)
        for i in range(train_per_class):
            h, wd = rng.integers(200, 400, 2)
            _save(base / "train" / w / f"{w}_{i + 1}.JPEG", random_image(rng, h, wd), quality=90)
    if with_meta:
        torch.save(({w: (f"class {w}", f"other name {w}") for w in wnids}, val_wnids), base / "meta.bin")
    return base


def voc_palette() -> list[int]:
    """The Pascal VOC colour map (bit-interleaved class index), 256 RGB triples flattened, as in VOC's devkit."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def write_voc_seg(root: Path, n_train: int = 4, n_val: int = 3, seed: int = 0) -> Path:
    """``root/VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/*.txt}``.

    Masks are palette PNGs (VOC colour map) of class indices: background 0, one rectangle of an object class with
    a 2-pixel boundary of 255 (as VOC draws object outlines). Images are W x H between 200 and 300 pixels.
    """
    rng = np.random.default_rng(seed)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    ids = {"train": [f"2007_{i:06d}" for i in range(n_train)], "val": [f"2008_{i:06d}" for i in range(n_val)]}
    for split, names in ids.items():
        for name in names:
            h, w = (int(v) for v in rng.integers(200, 300, 2))
            _save(voc / "JPEGImages" / f"{name}.jpg", random_image(rng, h, w), quality=90)
            mask = np.zeros((h, w), dtype=np.uint8)
            y0, x0 = int(rng.integers(10, h // 2)), int(rng.integers(10, w // 2))
            y1, x1 = y0 + h // 3, x0 + w // 3
            mask[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2] = 255
            mask[y0:y1, x0:x1] = int(rng.integers(1, 21))
            png = Image.fromarray(mask, mode="P")
            png.putpalette(palette)
            (voc / "SegmentationClass").mkdir(parents=True, exist_ok=True)
            png.save(voc / "SegmentationClass" / f"{name}.png")
        (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    (sets / "trainval.txt").write_text("".join(f"{n}\n" for n in ids["train"] + ids["val"]))
    return voc


def write_flowers102(root: Path, splits: dict[str, int] | None = None, n_classes: int = 3, seed: int = 0) -> Path:
    """``root/flowers-102/{jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat}`` (``.mat`` written by scipy.io).

    ``imagelabels.mat`` holds ``labels`` (1, N) with 1-based classes; ``setid.mat`` holds ``trnid``, ``valid``,
    ``tstid`` (1, n) with 1-based image numbers, as the official files.
    """
    from scipy.io import savemat

    splits = splits or {"trnid": 4, "valid": 3, "tstid": 5}
    rng = np.random.default_rng(seed)
    base = Path(root) / "flowers-102"
    n = sum(splits.values())
    for i in range(1, n + 1):
        h, w = (int(v) for v in rng.integers(300, 400, 2))
        _save(base / "jpg" / f"image_{i:05d}.jpg", random_image(rng, h, w), quality=90)
    savemat(base / "imagelabels.mat", {"labels": (rng.integers(0, n_classes, (1, n)) + 1).astype(np.uint8)})
    order = rng.permutation(n) + 1
    ids, start = {}, 0
    for key, k in splits.items():
        ids[key] = np.sort(order[start : start + k]).astype(np.uint16)[None, :]
        start += k
    savemat(base / "setid.mat", ids)
    return base


CELEBA_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
                "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
                "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
                "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
                "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
                "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
                "Wearing_Necktie", "Young"]


def write_celeba(root: Path, partition: Sequence[int] = (0, 0, 0, 0, 1, 2, 2), seed: int = 0) -> Path:
    """``root/celeba/img_align_celeba/NNNNNN.jpg`` (178x218) and the five annotation files in the official format.

    ``partition`` gives each image's ``list_eval_partition.txt`` value (0 train, 1 valid, 2 test). The annotation
    files have the official headers (a count line, then column names) and space-aligned columns.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "celeba"
    names = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    for name in names:
        _save(base / "img_align_celeba" / name, random_image(rng, 218, 178), quality=90)
    n = len(names)
    (base / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, partition)))
    (base / "identity_CelebA.txt").write_text("".join(f"{f} {int(rng.integers(1, 100))}\n" for f in names))
    bbox = "".join(f"{f}  {' '.join(str(int(v)) for v in rng.integers(10, 200, 4))}\n" for f in names)
    (base / "list_bbox_celeba.txt").write_text(f"{n}\nimage_id x_1 y_1 width height\n{bbox}")
    cols = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    marks = "".join(f"{f}  {' '.join(str(int(v)) for v in rng.integers(60, 160, 10))}\n" for f in names)
    (base / "list_landmarks_align_celeba.txt").write_text(f"{n}\n{cols}\n{marks}")
    attrs = "".join(f"{f} {' '.join(f'{int(v):2d}' for v in rng.choice([-1, 1], 40))}\n" for f in names)
    (base / "list_attr_celeba.txt").write_text(f"{n}\n{' '.join(CELEBA_ATTRS)} \n{attrs}")
    return base


def write_places365(root: Path, categories: Sequence[str] = ("/a/airfield", "/b/beach", "/c/canyon"),
                    train_per_class: int = 3, n_val: int = 4, seed: int = 0) -> Path:
    """Places365-Standard, small images: ``categories_places365.txt``, ``places365_train_standard.txt``,
    ``places365_val.txt``, ``data_256_standard/<letter>/<class>/NNNNNNNN.jpg`` and ``val_256/Places365_val_N.jpg``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "categories_places365.txt").write_text("".join(f"{c} {i}\n" for i, c in enumerate(categories)))
    lines = []
    for i, c in enumerate(categories):
        for k in range(train_per_class):
            rel = f"{c}/{k + 1:08d}.jpg"
            _save(root / "data_256_standard" / rel.lstrip("/"), random_image(rng, 256, 256), quality=90)
            lines.append(f"{rel} {i}\n")
    (root / "places365_train_standard.txt").write_text("".join(lines))
    lines = []
    for k in range(n_val):
        name = f"Places365_val_{k + 1:08d}.jpg"
        _save(root / "val_256" / name, random_image(rng, 256, 256), quality=90)
        lines.append(f"{name} {int(rng.integers(0, len(categories)))}\n")
    (root / "places365_val.txt").write_text("".join(lines))
    return root


def write_image_folder(root: Path, classes: Sequence[str] = ("cats", "dogs"), per_class: int = 4, seed: int = 0,
                       split: bool = False, size: tuple[int, int] | None = None, ext: str = ".jpg") -> Path:
    """``root/<class>/<n><ext>`` (or ``root/{train,test}/<class>/...`` with ``split``); W x H random in 40..80."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    folders = [root / "train", root / "test"] if split else [root]
    for folder in folders:
        for c in classes:
            for i in range(per_class):
                w, h = size or tuple(int(v) for v in rng.integers(40, 80, 2))
                kwargs = {"quality": 90} if ext in (".jpg", ".jpeg") else {}
                _save(folder / c / f"{i:05d}{ext}", random_image(rng, h, w), **kwargs)
    return root


def truncate_file(path: Path, keep_fraction: float = 0.5) -> Path:
    """Cut a file to its first ``keep_fraction`` of bytes (a truncated download)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(path)


# --- ICC profiles -------------------------------------------------------------------------------------------------
# Why by hand: Pillow's ImageCms creates only sRGB, Lab and XYZ profiles, and no other ICC file can be downloaded or
# is shipped here; tests of the colour management need an RGB profile that is *not* sRGB (and a grey one). These
# are minimal ICC v2 display profiles as the ICC.1:2001-04 specification lays them out: a 128-byte header, a tag
# table, then desc/cprt/wtpt, the three colorants (rXYZ, gXYZ, bXYZ; D50-adapted, Bradford) and gamma curves.

#: CIE xy chromaticities of the Adobe RGB (1998) primaries and of D65 (Adobe RGB (1998) Color Image Encoding).
ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
D65_XY = (0.3127, 0.3290)
#: The ICC profile connection space illuminant (D50), as the header stores it.
ICC_D50 = (0.9642, 1.0, 0.8249)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(primaries=ADOBE_RGB_PRIMARIES, white=D65_XY) -> np.ndarray:
    """The linear-RGB -> XYZ matrix of an RGB space (columns: the primaries scaled so that RGB = 1 is ``white``)."""
    p = np.stack([_xy_to_xyz(*xy) for xy in primaries], axis=1)
    return p * np.linalg.solve(p, _xy_to_xyz(*white))


def bradford(src_white: np.ndarray, dst_white: np.ndarray) -> np.ndarray:
    """The Bradford chromatic adaptation matrix from ``src_white`` to ``dst_white`` (XYZ)."""
    s, d = _BRADFORD @ src_white, _BRADFORD @ dst_white
    return np.linalg.inv(_BRADFORD) @ np.diag(d / s) @ _BRADFORD


def _s15(v: float) -> bytes:
    return int(round(v * 65536)).to_bytes(4, "big", signed=True)


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _curve_tag(gamma: float) -> bytes:
    return b"curv" + bytes(4) + (1).to_bytes(4, "big") + int(round(gamma * 256)).to_bytes(2, "big") + bytes(2)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\x00"
    return (b"desc" + bytes(4) + len(ascii_).to_bytes(4, "big") + ascii_ + bytes(4) + bytes(4) + bytes(2) + bytes(1)
            + bytes(67))


def _profile(colour_space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + (offset + len(data)).to_bytes(4, "big") + len(body).to_bytes(4, "big")
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (size.to_bytes(4, "big") + bytes(4) + bytes([2, 0x10, 0, 0]) + b"mntr" + colour_space + b"XYZ "
              + bytes(12) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4) + b"".join(_s15(v) for v in ICC_D50))
    header += bytes(128 - len(header))
    return header + len(tags).to_bytes(4, "big") + table + data


def rgb_profile(description: str = "Adobe RGB (1998) compatible (colorbench test fixture)",
                primaries=ADOBE_RGB_PRIMARIES, white=D65_XY, gamma: float = 563 / 256) -> bytes:
    """An ICC v2 RGB display profile (matrix and one gamma curve per channel) of the given primaries and white;
    by default Adobe RGB (1998): the sRGB red and blue primaries, a greener green, gamma 2.2 (563/256)."""
    adapted = bradford(_xy_to_xyz(*white), np.array(ICC_D50)) @ rgb_to_xyz_matrix(primaries, white)
    curve = _curve_tag(gamma)
    return _profile(b"RGB ", [(b"desc", _desc_tag(description)), (b"cprt", b"text" + bytes(4) + b"none\x00"),
                              (b"wtpt", _xyz_tag(ICC_D50)), (b"rXYZ", _xyz_tag(adapted[:, 0])),
                              (b"gXYZ", _xyz_tag(adapted[:, 1])), (b"bXYZ", _xyz_tag(adapted[:, 2])),
                              (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)])


def grey_profile(gamma: float = 563 / 256, description: str = "Gray gamma 2.2 (colorbench test fixture)") -> bytes:
    """An ICC v2 grey display profile (one gamma curve, D50 white)."""
    return _profile(b"GRAY", [(b"desc", _desc_tag(description)), (b"cprt", b"text" + bytes(4) + b"none\x00"),
                              (b"wtpt", _xyz_tag(ICC_D50)), (b"kTRC", _curve_tag(gamma))])
