"""Prediction folders: ``colorbench export`` writes a run's colorized test split as PNGs, ``colorbench evaluate``
scores a folder of colorizations (anyone's) into a run directory as a cell of kind ``"predictions"``.

File names. Export writes one lossless 8-bit RGB PNG per test image, named by the image id with every character
outside ``A-Z a-z 0-9 . _ -`` percent-encoded (``test:0`` -> ``test%3A0.png``; ``urllib.parse.quote``), and a
``manifest.json`` mapping ids to files. Evaluate matches a file to an id through the manifest when the folder has
one, else by its name without the image extension, percent-decoded; that name may also be the id without its own
extension, or the last path component of the id without extension (``ILSVRC2012_val_00000001.png`` for the id
``val/n01440764/ILSVRC2012_val_00000001.JPEG``) when that is unambiguous.

Decoding (:func:`decode_prediction`): through :func:`colorbench.datasets.imaging.to_rgb8`, the project's one
decoder (every Pillow mode by what its values mean: 16-bit grey scaled by 255/65535, palettes expanded, alpha
dropped, ...; 16-bit RGB PNGs as Pillow gives them, the high byte of each value); floating-point files are refused.
The file format (PNG, JPEG, ...), the mode of every file and each conversion ``to_rgb8`` made are counted in the
record; JPEG (lossy) is accepted and recorded as such.

Checks. A folder is refused unless every test id has exactly one decodable file of the test image's size and no
other image file is there; the error lists every missing id, extra file, duplicate, undecodable file and size
mismatch. ``resize_pred`` (``--resize-pred``) resizes predictions of another size to the real image's size
with the named interpolation instead of refusing them (recorded with the number of resized files).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from colorbench.core.fsio import atomic_write_with
from colorbench.datasets.imaging import decode_prediction

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "colorbench.predictions/1"
IMAGE_EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff",
                    ".tiff": "tiff", ".webp": "webp", ".ppm": "ppm"}
LOSSY_FORMATS = {"jpeg"}  # webp may be either; Pillow reports lossless webp as WEBP too (recorded as webp)
#: --resize-pred choices: interpolation used to bring a prediction to the real image's size (PIL, antialiased).
RESIZE_PRED_POLICIES = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                        "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


class PredictionFolderError(ValueError):
    """A prediction folder that cannot be scored; the message lists every problem and the fix."""


# --- file names ----------------------------------------------------------------------------------------------
def id_to_filename(image_id: str, ext: str = ".png") -> str:
    """The file name export gives a test image id (percent-encoded; reversible)."""
    return urllib.parse.quote(str(image_id), safe="-_.") + ext


def _stem(name: str) -> str:
    base, ext = os.path.splitext(name)
    return base if ext.lower() in IMAGE_EXTENSIONS else name


def _id_keys(ids: Sequence[str]) -> dict[str, str]:
    """Name (without image extension, percent-decoded) -> id, with the unambiguous fallbacks of the docstring."""
    keys: dict[str, str] = {str(i): str(i) for i in ids}
    fallbacks: dict[str, list[str]] = {}
    for i in map(str, ids):
        no_ext = os.path.splitext(i)[0]
        for k in {no_ext, os.path.splitext(i.replace("\\", "/").rsplit("/", 1)[-1])[0]}:
            if k and k != i:
                fallbacks.setdefault(k, []).append(i)
    for k, owners in fallbacks.items():
        if len(owners) == 1 and k not in keys:
            keys[k] = owners[0]
    return keys


# --- reading and checking a folder -------------------------------------------------------------------------------
@dataclass
class FolderContents:
    """A checked prediction folder, in the order of the test ids."""

    pred: np.ndarray  # (N, 3, H, W) uint8
    ids: list[str]
    files: list[str]
    formats: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)  # what to_rgb8 did -> number of files
    resized: int = 0
    manifest: dict[str, Any] | None = None

    @property
    def lossy(self) -> bool:
        return any(f in LOSSY_FORMATS for f in self.formats)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
        if not isinstance(m, dict) or not isinstance(m.get("files"), list):
            raise ValueError("no 'files' list")
        return m
    except (ValueError, json.JSONDecodeError) as exc:
        raise PredictionFolderError(f"{path} is not a colorbench predictions manifest ({exc}); remove it to match "
                                    "files by name") from None


def _match_files(folder: Path, ids: Sequence[str]) -> tuple[dict[str, list[str]], list[str], list[str], Any]:
    """Files of ``folder`` matched to ``ids`` by name or manifest (nothing decoded): ``(found: id -> file names,
    extra files, manifest ids that are not test ids, manifest)``."""
    manifest = _read_manifest(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST)
    found: dict[str, list[str]] = {}
    extra: list[str] = []
    if manifest is not None:
        by_file = {str(e.get("file")): str(e.get("id")) for e in manifest["files"] if isinstance(e, dict)}
        for name in files:
            if name in by_file:
                found.setdefault(by_file[name], []).append(name)
            else:
                extra.append(name)
        unknown_ids = sorted({i for i in by_file.values()} - set(ids))
    else:
        keys = _id_keys(ids)
        for name in files:
            key = urllib.parse.unquote(_stem(name))
            if key in keys:
                found.setdefault(keys[key], []).append(name)
            else:
                extra.append(name)
        unknown_ids = []
    return found, extra, unknown_ids, manifest


#: Image formats colorbench does not decode: a file of these is named, never silently skipped.
UNREAD_IMAGE_EXTENSIONS = (".gif", ".heic", ".heif", ".avif", ".jp2", ".jxl", ".exr", ".svg", ".raw", ".dng")
#: Lines of one kind of folder problem listed before "... and N more".
LIST_MAX = 20


def _listed(lines: Sequence[str]) -> str:
    shown = [f"    {ln}" for ln in lines[:LIST_MAX]]
    if len(lines) > LIST_MAX:
        shown.append(f"    ... and {len(lines) - LIST_MAX} more")
    return "\n".join(shown)


def _unread_note(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return f"  ({ext} files are not read: save the colorizations as PNG)" if ext in UNREAD_IMAGE_EXTENSIONS else ""


def _name_problems(ids: Sequence[str], found: dict[str, list[str]], extra: list[str], unknown_ids: list[str],
                   manifest: dict[str, Any] | None = None) -> list[str]:
    """The problems visible from the file names alone: missing ids, extra files, unknown ids, duplicates. Long
    lists are cut at :data:`LIST_MAX` lines; when a ``manifest.json`` decided the matching, the first line says so."""
    missing = [i for i in ids if i not in found]
    duplicates = {i: names for i, names in found.items() if len(names) > 1}
    problems = []
    if manifest is not None and (missing or extra or unknown_ids or duplicates):
        source = ", ".join(f"{k} {manifest.get(k)}" for k in ("method", "run") if manifest.get(k))
        problems.append(f"files were matched to test ids by the folder's {MANIFEST} (written by `colorbench export`"
                        + (f": {source}" if source else "") + f"), not by their names; remove {MANIFEST} to match "
                        "by file name")
    if missing:
        problems.append(f"{len(missing)} test image(s) have no prediction file (missing ids):\n"
                        + _listed([f"{i}  (expected e.g. {id_to_filename(i)})" for i in missing]))
    if extra:
        problems.append(f"{len(extra)} file(s) match no test id (extra files):\n"
                        + _listed([f"{n}{_unread_note(n)}" for n in extra]))
    if unknown_ids:
        problems.append(f"the manifest names {len(unknown_ids)} id(s) that are not test ids of this dataset:\n"
                        + _listed(list(unknown_ids)))
    if duplicates:
        problems.append(f"{len(duplicates)} id(s) have more than one file:\n"
                        + _listed([f"{i}: {', '.join(n)}" for i, n in duplicates.items()]))
    return problems


def _decode_problems(folder: Path, ids: Sequence[str], problems: list[str], undecodable: list[str],
                     mismatched: list[str]) -> PredictionFolderError | None:
    problems = list(problems)
    if undecodable:
        problems.append(f"{len(undecodable)} file(s) cannot be decoded:\n" + "\n".join(f"    {u}" for u in undecodable))
    if mismatched:
        problems.append(f"{len(mismatched)} prediction(s) do not have the real image's size (pass --resize-pred "
                        f"{'|'.join(RESIZE_PRED_POLICIES)} to resize them; recorded):\n"
                        + "\n".join(f"    {m}" for m in mismatched))
    if not problems:
        return None
    return PredictionFolderError(f"prediction folder {folder} does not match the {len(ids)} test images:\n  - "
                                 + "\n  - ".join(problems))


def read_prediction_folder(folder: str | Path, ids: Sequence[str], sizes: Sequence[tuple[int, int]] | tuple[int, int],
                           resize_pred: str | None = None, icc: str = "convert") -> FolderContents:
    """Read and check a folder of colorizations against the test ids and image sizes ``(H, W)``.

    Args:
        sizes: the (H, W) of each test image, or one (H, W) for all.
        resize_pred: None (a prediction of another size is an error) or a key of :data:`RESIZE_PRED_POLICIES`.

    Raises:
        PredictionFolderError: listing every missing id, extra file, duplicate, undecodable file and size mismatch.
    """
    from colorbench.datasets.imaging import CorruptImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise PredictionFolderError(f"prediction folder {folder} does not exist or is not a folder")
    if resize_pred is not None and resize_pred not in RESIZE_PRED_POLICIES:
        raise PredictionFolderError(f"unknown --resize-pred {resize_pred!r}; choose one of {list(RESIZE_PRED_POLICIES)}")
    ids = [str(i) for i in ids]
    if isinstance(sizes, tuple) and len(sizes) == 2 and isinstance(sizes[0], int):
        sizes = [sizes] * len(ids)  # type: ignore[list-item]
    found, extra, unknown_ids, manifest = _match_files(folder, ids)
    undecodable: list[str] = []
    mismatched: list[str] = []
    decoded: dict[str, np.ndarray] = {}
    formats: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    conversions: Counter[str] = Counter()
    resized = 0
    where = {i: k for k, i in enumerate(ids)}
    for image_id, names in found.items():  # every found file is decoded and size-checked, whatever else is wrong
        h, w = sizes[where[image_id]] if image_id in where else (None, None)
        for name in names:
            try:
                rgb, facts = decode_prediction(folder / name, icc)
            except CorruptImageError as exc:
                undecodable.append(f"{name}: {exc.reason}")
                continue
            formats[facts["format"]] += 1
            modes[facts["mode"]] += 1
            if facts["conversion"]:
                conversions[facts["conversion"]] += 1
            if h is not None and rgb.shape[:2] != (h, w):
                if resize_pred is None:
                    mismatched.append(f"{name}: {rgb.shape[1]}x{rgb.shape[0]} (WxH), the real image is {w}x{h}")
                    continue
                rgb = np.asarray(Image.fromarray(rgb).resize((w, h), RESIZE_PRED_POLICIES[resize_pred]), dtype=np.uint8)
                resized += 1
            decoded[image_id] = rgb.transpose(2, 0, 1)
    error = _decode_problems(folder, ids, _name_problems(ids, found, extra, unknown_ids), undecodable, mismatched)
    if error is not None:
        raise error
    return FolderContents(pred=np.stack([decoded[i] for i in ids]), ids=ids,
                          files=[found[i][0] for i in ids], formats=dict(formats), modes=dict(modes),
                          conversions=dict(conversions),
                          resized=resized, manifest=manifest)


def read_target_folder(folder: str | Path, protocol: Any = None) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Real images from a folder (``--target DIR``), searched recursively (e.g. ImageNet's ``val/<wnid>/``): ids are
    the relative paths without extension (sorted). With a protocol that lists its test images, only those are
    decoded (matched by file name without extension), in the protocol's order.

    Every image must have one size, unless the protocol resizes/crops (its ``prepare_real``)."""
    from colorbench.datasets.imaging import CorruptImageError

    folder = Path(folder)
    names, n_found = _list_target_folder(folder, protocol)
    images, bad, formats, conversions = [], [], Counter(), Counter()
    for name in names:
        try:
            rgb, facts = _decode_real(folder / name, protocol)
        except CorruptImageError as exc:
            bad.append(f"{name}: {exc.reason}")
            continue
        formats[facts["format"]] += 1
        if facts.get("conversion"):
            conversions[facts["conversion"]] += 1
        images.append(rgb)
    _check_target(folder, bad, Counter(im.shape[:2] for im in images))
    ids = [urllib.parse.unquote(_stem(n)) for n in names]
    desc = _target_desc(folder, protocol, ids, n_found, list(images[0].shape[:2]), formats, conversions,
                        hashlib.sha256(np.stack(images).tobytes()).hexdigest())
    return np.stack(images).transpose(0, 3, 1, 2).copy(), ids, desc


def _list_target_folder(folder: Path, protocol: Any) -> tuple[list[str], int]:
    """The image files of a target folder (relative paths, sorted; the protocol's test images only, in its order)
    and how many image files it holds."""
    if not folder.is_dir():
        raise PredictionFolderError(f"target folder {folder} does not exist or is not a folder")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and not p.name.startswith(".") and os.path.splitext(p.name)[1].lower() in IMAGE_EXTENSIONS)
    unread = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                    if p.is_file() and os.path.splitext(p.name)[1].lower() in UNREAD_IMAGE_EXTENSIONS)
    if unread:
        raise PredictionFolderError(f"target folder {folder} holds {len(unread)} image file(s) of a format colorbench "
                                    f"does not read ({', '.join(sorted({os.path.splitext(n)[1].lower() for n in unread}))}"
                                    f"): convert them to PNG or move them out:\n" + _listed(unread))
    if not names:
        raise PredictionFolderError(f"target folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    n_found = len(names)
    by_id = {urllib.parse.unquote(_stem(n)): n for n in names}
    if protocol is not None and protocol.test_ids is not None:
        picked, _ = protocol.select_test_images(list(by_id))  # ValueError listing what is missing
        names = [by_id[i] for i in picked]
    return names, n_found


def _decode_real(path: Path, protocol: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """One real image file as HWC uint8, prepared as the protocol prepares real images."""
    if protocol is not None and protocol.real_transform is not None:
        return protocol.prepare_real(path)
    return decode_prediction(path, "convert" if protocol is None else protocol.icc)


def _check_target(folder: Path, bad: list[str], shapes: Counter) -> None:
    if bad:
        raise PredictionFolderError(f"target folder {folder}: {len(bad)} file(s) cannot be decoded:\n"
                                    + "\n".join(f"    {b}" for b in bad))
    if len(shapes) > 1:
        listing = ", ".join(f"{w}x{h} ({n})" for (h, w), n in shapes.most_common())
        raise PredictionFolderError(f"target folder {folder}: the real images have different sizes ({listing}); "
                                    "resize them to one size first, or choose a --protocol that resizes them")


def _target_desc(folder: Path, protocol: Any, ids: list[str], n_found: int, size: list[int], formats: Counter,
                 conversions: Counter, sha256: str) -> dict[str, Any]:
    return {"name": f"folder:{folder.name}", "path": str(folder.resolve()), "n_train": 0, "n_test": len(ids),
            "n_files_found": n_found, "image_size": size, "formats": dict(formats),
            "conversions": dict(conversions),
            "real_transform": None if protocol is None else protocol.real_transform,
            "icc": "convert" if protocol is None else protocol.icc,
            "sha256": sha256}


# --- export ------------------------------------------------------------------------------------------------------
def _find_cell(rd: Any, method: str, dataset: str | None, preset: str | None, seed: int | None):
    cells = [c for c in rd.cells() if c.method == method and (dataset is None or c.dataset == dataset)
             and (preset is None or c.preset == preset) and (seed is None or int(c.seed) == seed)]
    if not cells:
        have = sorted({c.method for c in rd.cells()})
        raise ValueError(f"run {rd.path} has no cell of method {method!r}"
                         + (f" with dataset={dataset!r}" if dataset else "") + (f" preset={preset!r}" if preset else "")
                         + (f" seed={seed}" if seed is not None else "") + f"; its methods: {', '.join(have) or 'none'}")
    if len(cells) > 1:
        listed = "; ".join(f"dataset={c.dataset} preset={c.preset} seed={c.seed} kind={c.kind}" for c in cells)
        raise ValueError(f"run {rd.path} has {len(cells)} cells of method {method!r} ({listed}); choose one with "
                         "--dataset, --preset and --seed")
    return cells[0]


def _save_png(path: Path, chw: np.ndarray) -> None:
    image = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
    atomic_write_with(path, lambda buf: image.save(buf, format="PNG"))


def export_predictions(run_dir: str | Path, method: str, out: str | Path, *, dataset: str | None = None,
                       preset: str | None = None, seed: int | None = None) -> Path:
    """Write a cell's colorized test split as 8-bit RGB PNGs named by test image id, plus ``manifest.json``.

    Raises:
        ValueError: no such cell, several (choose with dataset/preset/seed), or the run kept no predictions.
    """
    from colorbench.results.rundir import RunDir

    rd = RunDir(run_dir)
    cell = _find_cell(rd, method, dataset, preset, seed)
    kept = rd.predictions(cell)
    if kept is None:
        raise ValueError(
            f"run {rd.path} kept no predictions of {method!r} on {cell.dataset} (colorbench keeps the colorized test "
            f"split whole when it is at most 64 MiB, or when asked). Run it again with the run's options (the "
            f"'spec' in {rd.path / 'run.json'}) plus `--methods {method} --save-predictions always --out NEW_DIR` "
            f"(into a new directory: finished cells are never recomputed), then export from NEW_DIR")
    pred, ids = kept
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ValueError(f"{out} exists and is not empty (and is not an earlier export); choose an empty --out folder")
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, chw in zip(ids, pred):
        name = id_to_filename(image_id)
        _save_png(out / name, chw)
        entries.append({"id": image_id, "file": name})
    record = rd.record(cell)
    manifest = {"schema": MANIFEST_SCHEMA, "run": str(rd.path.resolve()), "cell": cell.key, "method": method,
                "preset": cell.preset, "seed": int(cell.seed), "dataset": cell.dataset,
                "dataset_description": record.dataset, "grey_convention": record.grey_convention,
                "format": "png", "bits": 8, "color": "sRGB, uint8 (N,3,H,W) predictions.npz written losslessly",
                "n": len(entries), "files": entries}
    from colorbench.results.rundir import write_json

    write_json(out / MANIFEST, manifest)
    return out


# --- evaluate ----------------------------------------------------------------------------------------------------
class _PairDecoder:
    """Decodes the items of a batch of ``(prediction file or None, real position or None)`` pairs (in a DataLoader
    worker process, or in process): predictions through :func:`decode_prediction` (resized under ``resize_pred``),
    real images from the dataset's uint8 tensor or from the target folder's files. Failures are returned as
    messages, never raised, so that one pass lists every problem."""

    def __init__(self, items: list[tuple[str | None, int | None]], pred_dir: Path, icc: str, resize_pred: str | None,
                 real_rgb: Any = None, real_index: list[int] | None = None, target_dir: Path | None = None,
                 target_names: list[str] | None = None, protocol: Any = None) -> None:
        self.items, self.pred_dir, self.icc, self.resize_pred = items, pred_dir, icc, resize_pred
        self.real_index = real_index  # positions of the scored images in ``real_rgb`` (a subset is an index)
        self.real_rgb, self.target_dir, self.target_names, self.protocol = real_rgb, target_dir, target_names, protocol

    def __len__(self) -> int:
        return len(self.items)

    def _real(self, k: int) -> tuple[np.ndarray | None, dict[str, Any] | None, str | None]:
        from colorbench.datasets.imaging import CorruptImageError
        from colorbench.engine.protocols import get_protocol

        if self.real_rgb is not None:
            k = k if self.real_index is None else self.real_index[k]
            return self.real_rgb[k].numpy().transpose(1, 2, 0), None, None
        name = self.target_names[k]  # type: ignore[index]
        try:
            rgb, facts = _decode_real(self.target_dir / name, get_protocol(self.protocol) if self.protocol else None)  # type: ignore[operator]
        except CorruptImageError as exc:
            return None, None, f"{name}: {exc.reason}"
        return rgb, facts, None

    def __getitem__(self, positions: list[int]) -> dict[str, Any]:
        from colorbench.datasets.imaging import CorruptImageError

        out: dict[str, list[Any]] = {k: [] for k in ("pred", "real", "pred_facts", "real_facts", "pred_error",
                                                      "real_error", "mismatch", "resized")}
        for pos in positions:
            name, k = self.items[pos]
            real = real_facts = real_error = None
            if k is not None:
                real, real_facts, real_error = self._real(k)
            pred = facts = error = mismatch = None
            resized = False
            if name is not None:
                try:
                    pred, facts = decode_prediction(self.pred_dir / name, self.icc)
                except CorruptImageError as exc:
                    error = f"{name}: {exc.reason}"
                if pred is not None and real is not None and pred.shape[:2] != real.shape[:2]:
                    h, w = real.shape[:2]
                    if self.resize_pred is None:
                        mismatch = f"{name}: {pred.shape[1]}x{pred.shape[0]} (WxH), the real image is {w}x{h}"
                        pred = None
                    else:
                        pred = np.asarray(Image.fromarray(pred).resize((w, h), RESIZE_PRED_POLICIES[self.resize_pred]),
                                          dtype=np.uint8)
                        resized = True
            for key, v in (("pred", pred), ("real", real), ("pred_facts", facts), ("real_facts", real_facts),
                           ("pred_error", error), ("real_error", real_error), ("mismatch", mismatch),
                           ("resized", resized)):
                out[key].append(v)
        return _stack_batch(out)


def _stack_batch(out: dict[str, list[Any]]) -> dict[str, Any]:
    """Stack a clean batch into tensors (shared memory between processes): predictions ``(B, 3, H, W)``, real
    images ``(B, H, W, 3)`` (the layout their digest is taken in)."""
    import torch

    preds, reals = out["pred"], out["real"]
    if all(p is not None for p in preds) and all(r is not None for r in reals) and preds and reals \
            and len({r.shape for r in reals}) == 1 and len({p.shape for p in preds}) == 1:
        out["pred"] = torch.from_numpy(np.stack(preds).transpose(0, 3, 1, 2).copy())
        out["real"] = torch.from_numpy(np.stack(reals))
    return out


def _identity(x: Any) -> Any:
    return x


def _stream(decoder: _PairDecoder, batch_size: int, workers: int):
    """The decoder's items in order, ``batch_size`` per batch, decoded by ``workers`` processes (0: in process)."""
    batches = [list(range(s, min(s + batch_size, len(decoder)))) for s in range(0, len(decoder), batch_size)]
    if workers <= 0 or len(batches) < 2:
        return (decoder[b] for b in batches)
    import torch

    return iter(torch.utils.data.DataLoader(decoder, batch_size=None, sampler=batches, num_workers=workers,  # type: ignore[arg-type]
                                            collate_fn=_identity, prefetch_factor=2))


def default_decode_workers(n_images: int) -> int:
    """Decoding processes of ``evaluate`` when none are asked for: none below 512 images (starting them costs
    more than they save), else the cores minus one (the scoring runs in this process), at most 4."""
    if n_images < 512:
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def evaluate_folder(pred_dir: str | Path, out: str | Path, label: str, *, dataset: str | None = None,
                    dataset_options: dict[str, Any] | None = None, target: str | Path | None = None,
                    resize_pred: str | None = None, protocol: str = "colorbench", metrics: Sequence[str] | None = None,
                    device: str = "auto", eval_batch_size: int = 64, lpips_weights: str | None = None,
                    fid_weights: str | None = None, seed: int = 0, save_predictions: str = "auto",
                    workers: int | None = None, score_workers: int = 1, log=print):
    """Score a prediction folder against a dataset's test split or a folder of real images; write the cell.

    Both folders are streamed: batches of ``eval_batch_size`` pairs are decoded by ``workers`` processes
    (default :func:`default_decode_workers`) and scored as they come, so memory does not grow with the number
    of images; the target set is hashed as it streams and its structure references are cached by content.

    Args:
        workers: decoding processes (``--decode-workers``).
        score_workers: scoring processes (``--workers``; :func:`colorbench.engine.protocols.stream_metrics`): the
            same values; 1 (default) spends the fewest CPU seconds (each process adds its start and the batches'
            transfer), more shorten the wall time where cores are free.
        save_predictions: keep the decoded predictions in the run directory: ``auto`` (when at most
            ``PREDICTIONS_MAX_BYTES``, 64 MiB), ``always`` (refused when they do not fit in memory), ``never``.
            The sample images are kept always.

    Returns the written ``CellEntry`` (its record is in ``out``; the report is rewritten by the caller)."""
    import torch

    from colorbench.core.threads import scoring_threads
    from colorbench.engine.evaluation import StructureReferenceSums, cached_structure_references, store_structure_references
    from colorbench.engine.protocols import get_protocol
    from colorbench.results.records import RunRecord, environment_versions
    from colorbench.results.rundir import PREDICTIONS_MAX_BYTES, CellEntry, RunDir, RunInfo, now_iso

    if (dataset is None) == (target is None):
        raise ValueError("give either --dataset NAME (its test split is the reference) or --target DIR (a folder of "
                         "real images), not both or neither")
    if not label or "/" in label:
        raise ValueError(f"--name must be a non-empty label without '/', got {label!r}")
    if save_predictions not in ("auto", "always", "never"):
        raise ValueError(f"unknown predictions policy {save_predictions!r}; choose one of auto, always, never")
    if not (isinstance(score_workers, int) and score_workers >= 1):
        raise ValueError(f"--workers must be a positive integer, got {score_workers!r}")
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise PredictionFolderError(f"prediction folder {pred_dir} does not exist or is not a folder")
    if resize_pred is not None and resize_pred not in RESIZE_PRED_POLICIES:
        raise PredictionFolderError(f"unknown --resize-pred {resize_pred!r}; choose one of {list(RESIZE_PRED_POLICIES)}")
    proto = get_protocol(protocol)
    fid_real = None
    t0 = time.perf_counter()
    real_rgb = real_index = target_dir = target_names = None
    refs_keys: list[str] = []
    if dataset is not None:
        from colorbench.datasets import DATASETS
        from colorbench.engine.data import load_via_node_copy

        opts = proto.dataset_options(dataset, dict(dataset_options or {}))
        # --data-root s3://...: read from this node's copy, as `run` does
        data = load_via_node_copy(dataset, opts, lambda o: DATASETS.get(dataset)(**o).load())
        icc = str(opts.get("icc", proto.icc))  # the predictions are decoded as the real images were
        all_ids = list(data.test.ids)
        ids, _ = proto.select_test_images(all_ids)
        where_all = {i: k for k, i in enumerate(all_ids)}
        index = [where_all[i] for i in ids]
        real_rgb, real_index = data.test.rgb, None if index == list(range(len(all_ids))) else index
        desc, dataset_name = data.describe(), data.name
        size = list(data.test.image_size)
        refs_keys.append(hashlib.sha256(json.dumps([data.test.sha256(), ids]).encode()).hexdigest())
    else:
        from colorbench.datasets.cache import files_fingerprint

        target_dir = Path(target)  # type: ignore[arg-type]
        if proto.fid_reference_ids is not None:  # FID against other real images of the folder (ColTran's)
            import dataclasses

            fid_real = read_target_folder(target, dataclasses.replace(proto, test_ids=proto.fid_reference_ids))[0]
        target_names, n_found = _list_target_folder(target_dir, proto)
        ids = [urllib.parse.unquote(_stem(n)) for n in target_names]
        icc, dataset_name, size = proto.icc, f"folder:{target_dir.name}", None
        refs_keys.append(hashlib.sha256(json.dumps(
            [files_fingerprint(target_dir, [target_dir / n for n in target_names]), proto.real_transform,
             proto.icc]).encode()).hexdigest())
    ids = [str(i) for i in ids]
    found, extra, unknown_ids, manifest = _match_files(pred_dir, ids)
    name_problems = _name_problems(ids, found, extra, unknown_ids, manifest)
    where = {i: k for k, i in enumerate(ids)}
    if not name_problems:
        items: list[tuple[str | None, int | None]] = [(found[i][0], k) for k, i in enumerate(ids)]
    else:  # check every found file anyway, so that the error lists every problem at once
        items = [(name, where.get(i)) for i, names in found.items() for name in names]
        covered = {k for _, k in items if k is not None}
        items += [(None, k) for k in range(len(ids)) if k not in covered and target_dir is not None]
    keep = save_predictions != "never"  # auto: until the copy would pass PREDICTIONS_MAX_BYTES

    def check_keep(per_image_bytes: int) -> bool:
        whole = len(ids) * per_image_bytes
        if save_predictions == "always":
            from colorbench.datasets.cache import require_space

            require_space(whole, None, f"keeping the {len(ids)} predictions (--save-predictions always; use auto or "
                                       "never: the metrics do not need them)")
            return True
        return save_predictions == "auto" and whole <= PREDICTIONS_MAX_BYTES

    if size is not None:
        keep = check_keep(3 * size[0] * size[1])
    rd = RunDir(out, create=True)
    sample_ids = _sample_ids(rd, dataset_name)
    grey = proto.grey
    cached_refs = cached_structure_references(refs_keys[0], grey)
    refs_acc = StructureReferenceSums(grey) if cached_refs is None else None
    dev = _resolve(device)
    names = tuple(metrics) if metrics else proto.metrics
    n_workers = default_decode_workers(len(items)) if workers is None else int(workers)
    decoder = _PairDecoder(items, pred_dir, icc, resize_pred, real_rgb=real_rgb, real_index=real_index,
                           target_dir=target_dir,
                           target_names=target_names, protocol=proto if target_dir is not None else None)
    state: dict[str, Any] = {"formats": Counter(), "modes": Counter(), "conversions": Counter(),
                             "real_formats": Counter(), "real_conversions": Counter(), "shapes": Counter(),
                             "undecodable": [], "mismatched": [], "real_bad": [], "resized": 0, "kept": [],
                             "samples": {}, "sha": hashlib.sha256(), "done": 0, "colour_seen": False}
    wanted = set(sample_ids or ())

    def pairs():
        nonlocal keep
        pos = 0
        for batch in _stream(decoder, eval_batch_size, n_workers):
            b = len(batch["pred_error"])
            for j in range(b):
                for key, facts_key in (("pred_facts", None), ("real_facts", "real")):
                    facts = batch[key][j]
                    if facts is None:
                        continue
                    if facts_key is None:
                        state["formats"][facts["format"]] += 1
                        state["modes"][facts["mode"]] += 1
                        if facts["conversion"]:
                            state["conversions"][facts["conversion"]] += 1
                    else:
                        state["real_formats"][facts["format"]] += 1
                        if facts.get("conversion"):
                            state["real_conversions"][facts["conversion"]] += 1
                for key, dest in (("pred_error", "undecodable"), ("mismatch", "mismatched"), ("real_error", "real_bad")):
                    if batch[key][j] is not None:
                        state[dest].append(batch[key][j])
                state["resized"] += bool(batch["resized"][j])
            real = batch["real"]
            if isinstance(real, torch.Tensor):
                state["shapes"][tuple(real.shape[1:3])] += len(real)
            else:
                for r in real:
                    if r is not None:
                        state["shapes"][r.shape[:2]] += 1
            clean = (not name_problems and not state["undecodable"] and not state["mismatched"]
                     and not state["real_bad"] and len(state["shapes"]) == 1 and isinstance(batch["pred"], torch.Tensor))
            if clean:
                if target_dir is not None:
                    state["sha"].update(np.ascontiguousarray(real.numpy()))  # the digest of np.stack(images) (HWC), as before; no copy
                real_chw = real.permute(0, 3, 1, 2).contiguous()
                if refs_acc is not None:
                    refs_acc.update(real_chw)
                pred = batch["pred"]
                if not state["colour_seen"]:  # any pixel with R != G or G != B
                    state["colour_seen"] = bool((pred[:, 0] != pred[:, 1]).any() or (pred[:, 1] != pred[:, 2]).any())
                if keep and state["done"] == 0 and size is None:  # a target folder: its size is known now
                    keep = check_keep(pred[0].numel())
                if keep:
                    state["kept"].append(pred.numpy())
                for j in range(b):
                    if ids[pos + j] in wanted:
                        state["samples"][ids[pos + j]] = pred[j].numpy().copy()
                state["done"] += b
                yield pred, real_chw
            pos += b

    t1 = time.perf_counter()
    stream = pairs()
    try:
        with scoring_threads(n_workers if dev.type == "cpu" and score_workers == 1 else 0):
            values, per_image, histograms = proto.score_batches(stream, names, device=dev, lpips_weights=lpips_weights,
                                                                fid_weights=fid_weights, seed=seed, fid_real=fid_real,
                                                                batch_size=eval_batch_size, workers=score_workers)
    except Exception:
        for _ in stream:  # a metric failed: finish the pass so that the folder's own problems come first
            pass
        _raise_folder_problems(target_dir, pred_dir, ids, name_problems, state)
        raise
    eval_s = time.perf_counter() - t1
    _raise_folder_problems(target_dir, pred_dir, ids, name_problems, state)
    if state["done"] != len(ids):  # cannot happen without a problem listed above; never score a partial set
        raise RuntimeError(f"internal error: {state['done']} of {len(ids)} images were scored")
    if target_dir is not None:
        sha = state["sha"].hexdigest()
        (h, w), = state["shapes"]
        desc = _target_desc(target_dir, proto, ids, n_found, [h, w], state["real_formats"],
                            state["real_conversions"], sha)
        refs_keys.append(sha)
    if cached_refs is not None and target_dir is not None \
            and cached_structure_references(refs_keys[-1], grey) != cached_refs:
        cached_refs = None  # the files changed under the same names, sizes and times: compute them again
        refs_acc = StructureReferenceSums(grey)
        for batch in _stream(_PairDecoder([(None, k) for k in range(len(ids))], pred_dir, icc, None,
                                          target_dir=target_dir, target_names=target_names, protocol=proto),
                             eval_batch_size, n_workers):
            refs_acc.update(batch["real"].permute(0, 3, 1, 2).contiguous())
    refs = cached_refs if cached_refs is not None else refs_acc.compute()  # type: ignore[union-attr]
    if cached_refs is None:
        store_structure_references(refs_keys, grey, refs, sha256=refs_keys[-1])
    load_s = t1 - t0
    card = {"name": label, "title": f"predictions from {pred_dir.name}/", "paper": "", "source": "",
            "paired": True, "color_space": "rgb", "trainable": False, "stochastic": False, "needs_masks": False,
            "choices": [f"colorizations read from files ({', '.join(f'{n} {f}' for f, n in state['formats'].items())}), "
                        f"not produced by colorbench"]}
    formats = dict(state["formats"])
    config = {"kind": "predictions", "pred_dir": str(pred_dir.resolve()), "n_files": len(ids),
              "formats": formats, "lossy": any(f in LOSSY_FORMATS for f in formats), "modes": dict(state["modes"]),
              "conversions": dict(state["conversions"]), "icc": icc,
              "resize_pred": resize_pred, "resized": state["resized"], "manifest": manifest is not None,
              "manifest_source": None if manifest is None else {k: manifest.get(k) for k in
                                                                ("run", "cell", "method", "preset", "seed")},
              "protocol": proto.ident, "target": None if target is None else str(Path(target).resolve()),
              "predictions_kept": keep, "decode_workers": n_workers,
              "score_workers": score_workers}
    preset = "predictions" if proto.name == "colorbench" else f"predictions@{proto.name}"  # one cell per protocol
    desc = {**desc, "structure_references": refs}
    record = RunRecord(method=label, preset=preset, dataset=desc, grey_convention=proto.grey, seed=seed,
                       device=str(dev), card=card, config=config, metrics=values, versions=environment_versions(),
                       histograms=histograms)
    record.timings = {"load_s": load_s, "eval_s": eval_s, "total_s": time.perf_counter() - t0}
    if not state["colour_seen"]:  # a grey folder scores the grey input, not a colorization (it "wins" PSNR)
        grey_note = (f"every prediction in {pred_dir.name}/ is grey (R = G = B in every pixel): these values score "
                     "the grey input, not a colorization (was the right folder given?)")
        record.caveats = [grey_note]
        log(f"warning: {grey_note}")
    info = rd.info()
    if not rd.run_json.is_file():
        info = RunInfo(spec={"command": "evaluate", "protocol": proto.ident}, started=now_iso(),
                       versions=environment_versions(), device=str(dev), grey_convention=proto.grey)
    info.datasets.setdefault(dataset_name, desc)
    if label not in info.methods:
        info.methods.append(label)
    if info.status in ("running", "unknown") and not rd.missing_cells():
        info.status, info.finished = "complete", now_iso()
    entry = CellEntry(key=_cell_key(dataset_name, label, proto.ident), dataset=dataset_name, method=label,
                      preset=preset, seed=seed, kind="predictions")
    samples = np.stack([state["samples"][i] for i in sample_ids]) \
        if sample_ids and all(i in state["samples"] for i in sample_ids) else None
    kept = (np.concatenate(state["kept"]), ids) if keep and state["kept"] else None
    entry = rd.write_cell(entry, record, per_image={"ids": ids, **per_image} if per_image else None,
                          predictions=kept, samples=samples)
    rd.write_info(info)
    summary = ", ".join(f"{k}={mv.value:.4g}" for k, mv in values.items() if mv.value is not None)
    log(f"{label}: {len(ids)} predictions scored under protocol {proto.ident} in {eval_s:.1f} s: {summary}")
    return entry


def _raise_folder_problems(target_dir: Path | None, pred_dir: Path, ids: list[str], name_problems: list[str],
                           state: dict[str, Any]) -> None:
    if target_dir is not None:
        _check_target(target_dir, state["real_bad"], state["shapes"])
    error = _decode_problems(pred_dir, ids, name_problems, state["undecodable"], state["mismatched"])
    if error is not None:
        raise error


def _resolve(device: str) -> Any:
    from colorbench.core.device import resolve_device

    return resolve_device(device)


def _sample_ids(rd: Any, dataset: str) -> list[str] | None:
    """The ids of the run's sample images of ``dataset`` (when the run has them)."""
    path = rd.samples_path(dataset)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return [str(i) for i in z["ids"]] if "ids" in z.files else None


def _cell_key(dataset: str, label: str, protocol: str) -> str:
    h = hashlib.sha256(json.dumps([dataset, label, protocol, "predictions"]).encode())
    return h.hexdigest()[:16]
