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
    missing = [i for i in ids if i not in found]
    duplicates = {i: names for i, names in found.items() if len(names) > 1}
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
    problems = []
    if missing:
        problems.append(f"{len(missing)} test image(s) have no prediction file (missing ids):\n"
                        + "\n".join(f"    {i}  (expected e.g. {id_to_filename(i)})" for i in missing))
    if extra:
        problems.append(f"{len(extra)} file(s) match no test id (extra files):\n" + "\n".join(f"    {n}" for n in extra))
    if unknown_ids:
        problems.append(f"the manifest names {len(unknown_ids)} id(s) that are not test ids of this dataset:\n"
                        + "\n".join(f"    {i}" for i in unknown_ids))
    if duplicates:
        problems.append(f"{len(duplicates)} id(s) have more than one file:\n"
                        + "\n".join(f"    {i}: {', '.join(n)}" for i, n in duplicates.items()))
    if undecodable:
        problems.append(f"{len(undecodable)} file(s) cannot be decoded:\n" + "\n".join(f"    {u}" for u in undecodable))
    if mismatched:
        problems.append(f"{len(mismatched)} prediction(s) do not have the real image's size (pass --resize-pred "
                        f"{'|'.join(RESIZE_PRED_POLICIES)} to resize them; recorded):\n"
                        + "\n".join(f"    {m}" for m in mismatched))
    if problems:
        raise PredictionFolderError(f"prediction folder {folder} does not match the {len(ids)} test images:\n  - "
                                    + "\n  - ".join(problems))
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
    if not folder.is_dir():
        raise PredictionFolderError(f"target folder {folder} does not exist or is not a folder")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and not p.name.startswith(".") and os.path.splitext(p.name)[1].lower() in IMAGE_EXTENSIONS)
    if not names:
        raise PredictionFolderError(f"target folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    n_found = len(names)
    by_id = {urllib.parse.unquote(_stem(n)): n for n in names}
    if protocol is not None and protocol.test_ids is not None:
        picked, _ = protocol.select_test_images(list(by_id))  # ValueError listing what is missing
        names = [by_id[i] for i in picked]
    images, bad, formats, conversions = [], [], Counter(), Counter()
    for name in names:
        try:
            if protocol is not None and protocol.real_transform is not None:
                rgb, facts = protocol.prepare_real(folder / name)
            else:
                rgb, facts = decode_prediction(folder / name, "convert" if protocol is None else protocol.icc)
        except CorruptImageError as exc:
            bad.append(f"{name}: {exc.reason}")
            continue
        formats[facts["format"]] += 1
        if facts.get("conversion"):
            conversions[facts["conversion"]] += 1
        images.append(rgb)
    if bad:
        raise PredictionFolderError(f"target folder {folder}: {len(bad)} file(s) cannot be decoded:\n"
                                    + "\n".join(f"    {b}" for b in bad))
    shapes = Counter(im.shape[:2] for im in images)
    if len(shapes) > 1:
        listing = ", ".join(f"{w}x{h} ({n})" for (h, w), n in shapes.most_common())
        raise PredictionFolderError(f"target folder {folder}: the real images have different sizes ({listing}); "
                                    "resize them to one size first, or choose a --protocol that resizes them")
    ids = [urllib.parse.unquote(_stem(n)) for n in names]
    desc = {"name": f"folder:{folder.name}", "path": str(folder.resolve()), "n_train": 0, "n_test": len(ids),
            "n_files_found": n_found, "image_size": list(images[0].shape[:2]), "formats": dict(formats),
            "conversions": dict(conversions),
            "real_transform": None if protocol is None else protocol.real_transform,
            "icc": "convert" if protocol is None else protocol.icc,
            "sha256": hashlib.sha256(np.stack(images).tobytes()).hexdigest()}
    return np.stack(images).transpose(0, 3, 1, 2).copy(), ids, desc


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
def evaluate_folder(pred_dir: str | Path, out: str | Path, label: str, *, dataset: str | None = None,
                    dataset_options: dict[str, Any] | None = None, target: str | Path | None = None,
                    resize_pred: str | None = None, protocol: str = "colorbench", metrics: Sequence[str] | None = None,
                    device: str = "auto", eval_batch_size: int = 64, lpips_weights: str | None = None,
                    fid_weights: str | None = None, seed: int = 0, log=print):
    """Score a prediction folder against a dataset's test split or a folder of real images; write the cell.

    Returns the written ``CellEntry`` (its record is in ``out``; the report is rewritten by the caller)."""
    import torch

    from colorbench.engine.protocols import get_protocol
    from colorbench.results.records import RunRecord, environment_versions
    from colorbench.results.rundir import CellEntry, RunDir, RunInfo, now_iso

    if (dataset is None) == (target is None):
        raise ValueError("give either --dataset NAME (its test split is the reference) or --target DIR (a folder of "
                         "real images), not both or neither")
    if not label or "/" in label:
        raise ValueError(f"--name must be a non-empty label without '/', got {label!r}")
    proto = get_protocol(protocol)
    fid_real = None
    t0 = time.perf_counter()
    if dataset is not None:
        from colorbench.datasets import DATASETS

        opts = proto.dataset_options(dataset, dict(dataset_options or {}))
        data = DATASETS.get(dataset)(**opts).load()
        icc = str(opts.get("icc", proto.icc))  # the predictions are decoded as the real images were
        real = data.test.rgb.numpy()
        ids, desc = list(data.test.ids), data.describe()
        dataset_name = data.name
    else:
        real, ids, desc = read_target_folder(target, proto)
        dataset_name = desc["name"]
        icc = proto.icc
        if proto.fid_reference_ids is not None:  # FID against other real images of the folder (ColTran's)
            import dataclasses

            fid_real = read_target_folder(target, dataclasses.replace(proto, test_ids=proto.fid_reference_ids))[0]
    ids, real = proto.select_test_images(ids, real)
    contents = read_prediction_folder(pred_dir, ids, tuple(real.shape[2:]), resize_pred=resize_pred, icc=icc)
    load_s = time.perf_counter() - t0
    from colorbench.core.device import resolve_device

    dev = resolve_device(device)
    names = tuple(metrics) if metrics else proto.metrics
    t1 = time.perf_counter()
    values, per_image, histograms = proto.score(contents.pred, real, names, device=dev, batch_size=eval_batch_size,
                                                lpips_weights=lpips_weights, fid_weights=fid_weights, seed=seed,
                                                fid_real=fid_real)
    eval_s = time.perf_counter() - t1
    card = {"name": label, "title": f"predictions from {Path(pred_dir).name}/", "paper": "", "source": "",
            "paired": True, "color_space": "rgb", "trainable": False, "stochastic": False, "needs_masks": False,
            "choices": [f"colorizations read from files ({', '.join(f'{n} {f}' for f, n in contents.formats.items())}), "
                        f"not produced by colorbench"]}
    config = {"kind": "predictions", "pred_dir": str(Path(pred_dir).resolve()), "n_files": len(contents.files),
              "formats": contents.formats, "lossy": contents.lossy, "modes": contents.modes,
              "conversions": contents.conversions, "icc": icc,
              "resize_pred": resize_pred, "resized": contents.resized, "manifest": contents.manifest is not None,
              "manifest_source": None if contents.manifest is None else {k: contents.manifest.get(k) for k in
                                                                         ("run", "cell", "method", "preset", "seed")},
              "protocol": proto.ident, "target": None if target is None else str(Path(target).resolve())}
    preset = "predictions" if proto.name == "colorbench" else f"predictions@{proto.name}"  # one cell per protocol
    from colorbench.metrics.image_quality import structure_references

    desc = {**desc, "structure_references": structure_references(torch.from_numpy(real), proto.grey)}
    record = RunRecord(method=label, preset=preset, dataset=desc, grey_convention=proto.grey, seed=seed,
                       device=str(dev), card=card, config=config, metrics=values, versions=environment_versions(),
                       histograms=histograms)
    record.timings = {"load_s": load_s, "eval_s": eval_s, "total_s": time.perf_counter() - t0}
    rd = RunDir(out, create=True)
    info = rd.info()
    if not rd.run_json.is_file():
        info = RunInfo(spec={"command": "evaluate", "protocol": proto.ident}, started=now_iso(),
                       versions=environment_versions(), device=str(dev), grey_convention=proto.grey)
    info.datasets.setdefault(dataset_name, desc)
    if label not in info.methods:
        info.methods.append(label)
    if info.status in ("running", "unknown") and not rd.missing_cells():
        info.status, info.finished = "complete", now_iso()
    entry = CellEntry(key=_cell_key(dataset_name, label, proto.ident, contents), dataset=dataset_name, method=label,
                      preset=preset, seed=seed, kind="predictions")
    samples = _samples_for(rd, dataset_name, contents)
    entry = rd.write_cell(entry, record, per_image={"ids": ids, **per_image} if per_image else None,
                          predictions=(contents.pred, ids), samples=samples)
    rd.write_info(info)
    summary = ", ".join(f"{k}={mv.value:.4g}" for k, mv in values.items() if mv.value is not None)
    log(f"{label}: {len(ids)} predictions scored under protocol {proto.ident} in {eval_s:.1f} s: {summary}")
    del torch
    return entry


def _cell_key(dataset: str, label: str, protocol: str, contents: FolderContents) -> str:
    h = hashlib.sha256(json.dumps([dataset, label, protocol, "predictions"]).encode())
    return h.hexdigest()[:16]


def _samples_for(rd: Any, dataset: str, contents: FolderContents) -> np.ndarray | None:
    """This folder's colorizations of the run's sample images of ``dataset`` (when the run has them)."""
    path = rd.samples_path(dataset)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        sample_ids = [str(i) for i in z["ids"]] if "ids" in z.files else []
    where = {i: k for k, i in enumerate(contents.ids)}
    if not sample_ids or any(i not in where for i in sample_ids):
        return None
    return contents.pred[[where[i] for i in sample_ids]]
