"""Every pretrained file a colorbench metric or method can read, where it comes from and where it goes.

One registry (:data:`WEIGHTS`) and one lookup (:func:`require`) serve the LPIPS and FID metrics, the feature
networks of the methods and Zhang et al.'s released colorizers, so "put file X at path Y" is said the same way
everywhere, and ``colorbench weights list | fetch [NAME...] | verify [NAME...]`` (:mod:`colorbench.commands.weights`)
manages the files:

* ``list``: name, file, URL, hash, destination and whether the file is there;
* ``fetch``: downloads with a tqdm progress bar into a temporary file next to the destination, checks the size
  announced by the server and the hash, then moves it into place atomically (``core.fsio.atomic_stream``: no half file is
  ever at the destination). Without a network it fails at once (no retries) and lists each requested file that is
  still missing with its URL and destination;
* ``verify``: hashes the files that are there.

Hashes. Where the full SHA-256 is published (or was measured from the file shipped in a package) it is stored
and checked in full. torch hub file names carry only the first hex digits of the file's SHA-256
(``alexnet-owt-7be5be79.pth``: torch.hub's ``check_hash`` compares that prefix), and that prefix is all that is
published for the torchvision, pytorch-fid and Zhang et al. files: for those the prefix is stored and checked,
and :attr:`WeightsFile.full_hash` is False (``list`` shows it).

Destination: torch hub's checkpoint directory, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/
checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), where torch.hub and torchvision put these files
themselves, so a file fetched once serves both. The lpips package's linear layers ship inside the package
(``kind="bundled"``): they are verified but never downloaded (reinstall lpips to restore them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from colorbench.core.fsio import atomic_stream
from colorbench.core.registry import UnknownNameError


class WeightsUnavailable(FileNotFoundError):
    """A pretrained file is missing or is not the published one. The message says which file to put where."""


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained file.

    Attributes:
        name: registry name (``colorbench weights fetch NAME``).
        file_name: the file's published name (also its name at the destination).
        url: where the file is published.
        sha256: its SHA-256 in lower-case hex: all 64 digits, or the published prefix (see the module docstring).
        used_by: the metrics / methods that read it.
        description: what it is.
        kind: ``"download"`` (fetched into torch hub's checkpoint directory) or ``"bundled"`` (ships in a Python
            package; ``package`` and ``package_path`` locate it).
        hash_source: where the hash comes from.
    """

    name: str
    file_name: str
    url: str
    sha256: str
    used_by: tuple[str, ...]
    description: str
    kind: str = "download"
    package: str = ""
    package_path: str = ""
    hash_source: str = "the prefix in the published file name (torch hub convention)"

    @property
    def full_hash(self) -> bool:
        return len(self.sha256) == 64

    def path(self, root: str | os.PathLike | None = None) -> Path:
        """Where the file is read from (and fetched to): ``root/file_name``, by default in torch hub's
        checkpoint directory; for bundled files, inside the installed package."""
        if self.kind == "bundled":
            import importlib.util

            # the package's folder without importing it (importing lpips imports torchvision: seconds)
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                raise ModuleNotFoundError(f"No module named {self.package!r}")
            return Path(list(spec.submodule_search_locations)[0]) / self.package_path
        return Path(root if root is not None else default_root()) / self.file_name


def default_root() -> Path:
    """torch hub's checkpoint directory (follows ``torch.hub.set_dir`` and ``$TORCH_HOME``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


_TV = "https://download.pytorch.org/models/"
_ZHANG = "https://colorizers.s3.us-east-2.amazonaws.com/"
_DDCOLOR = "https://huggingface.co/piddnad/DDColor-models/resolve/e9e7b527709c8aeb2f5e1bf701e72fd468a13baa/"
_DDCOLOR_HASH = ("the Git LFS SHA-256 shown on huggingface.co/piddnad/DDColor-models/blob/"
                 "e9e7b527709c8aeb2f5e1bf701e72fd468a13baa/<file> (read 2026-12-07; not measured here: no download)")
_LPIPS_GIT = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
_LPIPS_HASH = "measured: SHA-256 of the file in the lpips 0.1.4 package (the same file as in the lpips repository)"

#: name -> file. URLs: torchvision's ``*_Weights.IMAGENET1K_V1.url``; pytorch-fid's ``FID_WEIGHTS_URL``; Zhang et
#: al.'s ``colorizers/eccv16.py`` and ``colorizers/siggraph17.py`` (richzhang/colorization, loaded there with
#: ``model_zoo.load_url(..., check_hash=True)``, i.e. the name's prefix is the SHA-256 prefix).
WEIGHTS: dict[str, WeightsFile] = {w.name: w for w in (
    WeightsFile("alexnet", "alexnet-owt-7be5be79.pth", _TV + "alexnet-owt-7be5be79.pth", "7be5be79",
                ("lpips (net=alex)",), "torchvision AlexNet, ImageNet (IMAGENET1K_V1): LPIPS backbone"),
    WeightsFile("vgg16", "vgg16-397923af.pth", _TV + "vgg16-397923af.pth", "397923af",
                ("lpips (net=vgg)", "gorriz-featrec (feature_weights_kind=torchvision)",
                 "cross-domain classifier preset paper-vgg16-imagenet"),
                "torchvision VGG16, ImageNet (IMAGENET1K_V1): LPIPS backbone and feature-loss network"),
    WeightsFile("vgg16-caffe", "vgg16-00b39a1b.pth", "https://web.eecs.umich.edu/~justincj/models/vgg16-00b39a1b.pth",
                "00b39a1b", ("gorriz-featrec (feature_weights_kind=caffe, its paper and quick presets)",),
                "the original Caffe VGG16 of Simonyan & Zisserman (the weights Keras's VGG16 ships), converted to "
                "torchvision's layout by J. Johnson (jcjohnson/pytorch-vgg); takes caffe preprocessing (BGR, 0-255, "
                "mean-subtracted): the feature network of Tarrés 2021"),
    WeightsFile("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", _TV + "squeezenet1_1-b8a52dc0.pth", "b8a52dc0",
                ("lpips (net=squeeze)",), "torchvision SqueezeNet 1.1, ImageNet (IMAGENET1K_V1): LPIPS backbone"),
    WeightsFile("resnet50", "resnet50-0676ba61.pth", _TV + "resnet50-0676ba61.pth", "0676ba61",
                ("gorriz-featrec (feature_backbone=resnet50)",),
                "torchvision ResNet-50, ImageNet (IMAGENET1K_V1): feature-loss network"),
    WeightsFile("inception-v3", "inception_v3_google-0cc3c7bd.pth", _TV + "inception_v3_google-0cc3c7bd.pth",
                "0cc3c7bd", ("fid (weights=torchvision)",),
                "torchvision Inception v3, ImageNet: FID backbone NOT comparable to published FID"),
    WeightsFile("inception-v3-1a9a5a14", "inception_v3_google-1a9a5a14.pth", _TV + "inception_v3_google-1a9a5a14.pth",
                "1a9a5a14", ("fid (weights=torchvision-1a9a5a14; protocols ddcolor-imagenet-val50k, ct2-imagenet-val5k)",),
                "torchvision's earlier Inception v3 ImageNet file (torchvision < 0.13), the one DDColor and CT2 load "
                "for their FID"),
    WeightsFile("pt-inception-fid", "pt_inception-2015-12-05-6726825d.pth",
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth", "6726825d", ("fid (weights=pytorch-fid)",),
                "pytorch-fid's port of the TensorFlow FID Inception (2015-12-05): the FID of published numbers"),
    WeightsFile("zhang-eccv16", "colorization_release_v2-9b330a0b.pth", _ZHANG + "colorization_release_v2-9b330a0b.pth",
                "9b330a0b", ("zhang-eccv16 (preset released)",),
                "Zhang, Isola, Efros ECCV 2016 colorizer, the authors' PyTorch release of colorization_release_v2"),
    WeightsFile("zhang-siggraph17", "siggraph17-df00044c.pth", _ZHANG + "siggraph17-df00044c.pth", "df00044c",
                ("zhang-siggraph17",), "Zhang et al. SIGGRAPH 2017 colorizer, the authors' PyTorch release"),
    WeightsFile("ddcolor-paper", "ddcolor_paper.pth", _DDCOLOR + "ddcolor_paper.pth",
                "789781789db1bafc2165e1cf9658580f871cce64a81901ec49127877813f10b9", ("ddcolor (presets paper, paper-512)",),
                "DDColor-L (ConvNeXt-L), the authors' paper model trained on ImageNet (MODEL_ZOO.md of piddnad/DDColor)",
                hash_source=_DDCOLOR_HASH),
    WeightsFile("ddcolor-paper-tiny", "ddcolor_paper_tiny.pth", _DDCOLOR + "ddcolor_paper_tiny.pth",
                "81dd643904f4664c3718513e3320ae3db0c567f0d3e18398606659adee7bfc17",
                ("ddcolor (presets tiny, tiny-512, quick)",),
                "DDColor-T (ConvNeXt-T), trained on ImageNet with the paper model's scheme (MODEL_ZOO.md)",
                hash_source=_DDCOLOR_HASH),
    WeightsFile("ddcolor-modelscope", "ddcolor_modelscope.pth", _DDCOLOR + "ddcolor_modelscope.pth",
                "17c460d7e55b32a598370621d77173be59e03c24b0823f06821db23a50c263ce", ("ddcolor (preset modelscope-512)",),
                "DDColor-L trained on ImageNet cleaned as BigColor's (the authors' default for images outside "
                "ImageNet; MODEL_ZOO.md)", hash_source=_DDCOLOR_HASH),
    WeightsFile("ddcolor-artistic", "ddcolor_artistic.pth", _DDCOLOR + "ddcolor_artistic.pth",
                "a591ee5beedad36de703d8977e92d0c30c1eedc6453fd1b300f3b460842a23a9", ("ddcolor (preset artistic-512)",),
                "DDColor-L trained on ImageNet + the authors' private artistic images, no colourfulness loss "
                "(MODEL_ZOO.md)", hash_source="the Git LFS pointer (oid sha256, size 911950059) of ddcolor_artistic.pth in "
                "commit 1969bc5 of huggingface.co/piddnad/DDColor-models, unchanged since (read 2026-12-07)"),
    WeightsFile("lpips-alex-lin", "alex.pth", _LPIPS_GIT + "alex.pth",
                "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", ("lpips (net=alex)",),
                "lpips v0.1 linear layers for AlexNet", kind="bundled", package="lpips",
                package_path="weights/v0.1/alex.pth", hash_source=_LPIPS_HASH),
    WeightsFile("lpips-vgg-lin", "vgg.pth", _LPIPS_GIT + "vgg.pth",
                "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", ("lpips (net=vgg)",),
                "lpips v0.1 linear layers for VGG16", kind="bundled", package="lpips",
                package_path="weights/v0.1/vgg.pth", hash_source=_LPIPS_HASH),
    WeightsFile("lpips-squeeze-lin", "squeeze.pth", _LPIPS_GIT + "squeeze.pth",
                "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76", ("lpips (net=squeeze)",),
                "lpips v0.1 linear layers for SqueezeNet 1.1", kind="bundled", package="lpips",
                package_path="weights/v0.1/squeeze.pth", hash_source=_LPIPS_HASH),
)}


def get(name: str) -> WeightsFile:
    """The registry entry ``name``; an unknown name is an error listing the known ones."""
    if name not in WEIGHTS:
        raise UnknownNameError(f"unknown weights file {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_matches(digest: str, expected: str) -> bool:
    """A full digest against a full hash (equality) or a published prefix (``startswith``)."""
    return digest.startswith(expected.lower())


def _get_hint(entry: WeightsFile, dest: Path) -> str:
    if entry.kind == "bundled":
        return f"reinstall the {entry.package} package (it ships {entry.package_path}; upstream: {entry.url})"
    return f"put the file {entry.url} at {dest} (with internet access: colorbench weights fetch {entry.name})"


#: TEST ONLY: name -> a stand-in file that :func:`require` returns without a hash check (see
#: :func:`stand_in_for_tests`). Empty in normal use.
_STAND_INS: dict[str, Path] = {}


@contextlib.contextmanager
def stand_in_for_tests(name: str, path: str | os.PathLike):
    """TEST ONLY: while the block runs, :func:`require` ``(name)`` (without an explicit path) returns ``path``
    unchecked. For tests that need a file in the exact on-disk format (e.g. a random-valued state dict with the
    released names) where the real file cannot be downloaded; methods record it (``stand_in_for_tests`` in their
    notes), so a value computed with a stand-in is never mistaken for the real one."""
    get(name)
    old = _STAND_INS.get(name)
    _STAND_INS[name] = Path(path)
    try:
        yield Path(path)
    finally:
        if old is None:
            _STAND_INS.pop(name, None)
        else:
            _STAND_INS[name] = old


def stand_in(name: str) -> Path | None:
    """The test stand-in of ``name`` in force, if any."""
    return _STAND_INS.get(name)


def require(name: str, path: str | os.PathLike | None = None, *, check_hash: bool = True, who: str = "") -> Path:
    """The file of entry ``name`` (at ``path`` if given, else at its destination), after checking its hash.

    Args:
        name: registry name.
        path: another location of the file (a user option such as ``--lpips-weights``).
        check_hash: compare the file's SHA-256 with the entry's hash (full or prefix).
        who: what needs the file, for the message (e.g. ``"LPIPS (net='alex')"``).

    Raises:
        WeightsUnavailable: the file is absent or its hash differs; the message names the file, the path and the
            URL, and says how to get it.
    """
    entry = get(name)
    if path is None and name in _STAND_INS:
        return _STAND_INS[name]
    dest = Path(path) if path is not None else entry.path()
    need = f"{who} needs" if who else "needed:"
    if not dest.is_file():
        raise WeightsUnavailable(
            f"{need} the weights file {entry.file_name} ({entry.description}), which is not on this machine: no "
            f"file at {dest} (nothing is downloaded while running). To fix it, "
            f"{_get_hint(entry, entry.path() if path is None else dest)}."
        )
    if check_hash:
        digest = sha256_of(dest)
        if not hash_matches(digest, entry.sha256):
            what = "SHA-256" if entry.full_hash else f"SHA-256 prefix (published in the file name)"
            raise WeightsUnavailable(
                f"{dest} is not {entry.file_name}: its SHA-256 {digest[:16]}… does not match the {what} "
                f"{entry.sha256[:16]}. Replace it: {_get_hint(entry, dest)} (or pass check_hash=False for a file "
                "you trust)."
            )
    return dest


def status(entry: WeightsFile, root: str | os.PathLike | None = None, hash_files: bool = False) -> str:
    """``"missing"``, ``"present"`` (not hashed), ``"ok"`` or ``"BAD HASH"``."""
    p = entry.path(root)
    if not p.is_file():
        return "missing"
    if not hash_files:
        return "present"
    return "ok" if hash_matches(sha256_of(p), entry.sha256) else "BAD HASH"


# --- fetching ------------------------------------------------------------------------------------------------
class FetchError(RuntimeError):
    """A download failed (offline, HTTP error, truncated file, wrong hash). Nothing was left at the destination."""


class Offline(FetchError):
    """The server could not be reached at all (no network, DNS failure, connection refused)."""


def remove_stale_parts(dest: Path) -> list[Path]:
    """Delete the partial downloads of ``dest`` (``.<name>.<pid>.part``) whose writing process is gone (a fetch
    killed with -9 cannot clean up after itself); a part of a live fetch is left alone. Returns what was removed."""
    removed = []
    for part in dest.parent.glob(f".{dest.name}.*.part"):
        pid = part.name[len(dest.name) + 2 : -len(".part")]
        alive = False
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
                alive = int(pid) != os.getpid()
            except ProcessLookupError:
                alive = False
            except PermissionError:  # another user's live process
                alive = True
        if not alive:
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def fetch_file(entry: WeightsFile, root: str | os.PathLike | None = None, *, progress: bool = True,
               timeout: float = 20.0, opener: Callable = urllib.request.urlopen) -> Path:
    """Download ``entry`` to its destination under ``root``: stream into a temporary file in the destination
    directory (tqdm progress bar; ``colorbench.core.fsio.atomic_stream``), check the byte count against
    ``Content-Length`` and the SHA-256 against the entry, then move it into place. Returns the destination.

    Raises:
        Offline: the server cannot be reached (nothing was written).
        FetchError: HTTP error, truncated download or wrong hash (the temporary file is removed).
        DiskFullError, WriteError: the file cannot be written (the message names it; nothing is left behind).
    """
    from tqdm import tqdm

    if entry.kind == "bundled":
        raise FetchError(f"{entry.name} is not downloaded: {_get_hint(entry, entry.path())}")
    dest = entry.path(root)
    try:
        response = opener(entry.url, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise FetchError(f"{entry.url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:  # DNS failure, refused connection, timeout
        reason = getattr(err, "reason", err)
        raise Offline(f"cannot reach {entry.url}: {reason}") from err
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest)
    # the temporary file .NAME.PID.part names its writer (see remove_stale_parts); fsio moves it into place only
    # when the block ends without an error, and removes it otherwise
    with atomic_stream(dest, suffix=".part") as out, response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        h = hashlib.sha256()
        n = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file_name,
                  disable=not progress, leave=False) as bar:
            while True:
                try:
                    block = response.read(1 << 16)
                except (OSError, urllib.error.URLError) as err:  # connection dropped mid-file
                    raise FetchError(f"{entry.url}: download interrupted after {n} bytes: {err}") from err
                if not block:
                    break
                out.write(block)
                h.update(block)
                n += len(block)
                bar.update(len(block))
        if total is not None and n != total:
            raise FetchError(f"{entry.url}: truncated download, got {n} of {total} bytes")
        digest = h.hexdigest()
        if not hash_matches(digest, entry.sha256):
            raise FetchError(f"{entry.url}: wrong file, SHA-256 {digest[:16]}… does not match "
                             f"{'the published hash' if entry.full_hash else 'the published prefix'} {entry.sha256}")
    return dest


def fetch(names: Sequence[str] = (), root: str | os.PathLike | None = None, *, progress: bool = True,
          force: bool = False, timeout: float = 20.0, log: Callable[[str], None] = print) -> list[Path]:
    """Fetch the named files (all downloadable ones if none are named) that are not there yet (or all with
    ``force``). Files already present are hashed; a present file with a wrong hash is fetched again.

    Raises:
        Offline: at the first unreachable server; the message lists every requested file still missing and
            where to put it.
        FetchError: any other failed download (the files fetched before it stay).
    """
    entries = [get(n) for n in names] if names else [w for w in WEIGHTS.values() if w.kind == "download"]
    done: list[Path] = []
    for entry in entries:
        if entry.kind == "bundled":
            state = status(entry, root, hash_files=True)
            log(f"{entry.name}: bundled with {entry.package} ({state}); not downloaded")
            if state != "ok":
                raise FetchError(f"{entry.name}: {_get_hint(entry, entry.path())}")
            continue
        dest = entry.path(root)
        if not force and dest.is_file():
            if hash_matches(sha256_of(dest), entry.sha256):
                log(f"{entry.name}: already at {dest} (hash ok)")
                done.append(dest)
                continue
            log(f"{entry.name}: {dest} has the wrong hash; fetching it again")
        try:
            done.append(fetch_file(entry, root, progress=progress, timeout=timeout))
        except Offline as err:
            missing = [e for e in entries if e.kind == "download" and not e.path(root).is_file()]
            lines = "\n".join(f"  {e.name}: put {e.url}\n      at {e.path(root)}" for e in missing)
            raise Offline(f"{err} (offline?). Files still missing:\n{lines}") from err
        log(f"{entry.name}: fetched to {dest}")
    return done
