"""RESULTS: the shared folder (or any fsspec URI) that holds every published submission.

Layout::

    RESULTS/submissions/<sha256>.json   one submission; the name is the sha256 of its result's canonical JSON
    RESULTS/blobs/<sha256>.npz          per-image values of a submission (ids + one float64 array per key)
    RESULTS/blobs/<sha256>.png          sample images of a submission

Every file is content-addressed, so a file that exists is never rewritten: publishing twice is a no-op, and two
machines publishing at once write distinct files, or the same file with the same result, without a lock.
Writes are atomic: on a local disk a complete temporary file with a unique name in the same folder
(:func:`colorbench.core.fsio.atomic_write_bytes`), then ``os.replace``; on any other fsspec file system one ``pipe_file`` call, a single
PUT for object stores (S3, GCS, Azure), which never expose half an object. A folder that is a git repository
works as it is: commit ``submissions/`` and ``blobs/`` after publishing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from colorbench.hub.submission import (Prepared, SubmissionError, migrate, result_sha256, validate)

SUBMISSIONS = "submissions"
BLOBS = "blobs"


class ResultsStore:
    """A RESULTS location: a local folder or an fsspec URI (``memory://lab``, ``s3://bucket/results``, ...)."""

    def __init__(self, uri: str | Path) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.uri = str(uri)
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ResultsStore({self.uri!r})"

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def where(self, rel: str) -> str:
        """How to name a file of the store in a message (its local path or URI)."""
        if self.local:
            return str(Path(self.root) / rel)
        return f"{self.uri.rstrip('/')}/{rel}"

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def is_results(self) -> bool:
        """True when the location holds a ``submissions/`` folder."""
        return bool(self.fs.isdir(self.path(SUBMISSIONS)))

    def write_once(self, rel: str, data: bytes) -> bool:
        """Write ``data`` at ``rel`` unless a file is there already (content addressing); True if written."""
        if self.exists(rel):
            return False
        if self.local:
            from colorbench.core.fsio import atomic_write_bytes

            # a temporary name no other writer uses (machines sharing a network file system may share process
            # ids), written completely (fsync, full-disk message), then renamed into place
            atomic_write_bytes(Path(self.root) / rel, data, unique_tmp=True)
        else:
            self.fs.makedirs(self.path(rel).rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(self.path(rel), data)
        return True

    def read(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def submission_files(self) -> list[str]:
        """Relative paths of ``submissions/*.json``, sorted; other files there are returned too (and rejected
        by :meth:`read_submission` with a message naming them)."""
        if not self.fs.isdir(self.path(SUBMISSIONS)):
            return []
        out = []
        for p in self.fs.ls(self.path(SUBMISSIONS), detail=False):
            name = str(p).rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("."):  # a temporary file of a write in progress
                continue
            out.append(f"{SUBMISSIONS}/{name}")
        return sorted(out)

    def read_submission(self, rel: str) -> dict[str, Any]:
        """Read, migrate and validate one submission; check that its name is its content's hash.

        Raises:
            SubmissionError: not JSON, not a submission, fails the schema, or was edited after publishing.
        """
        where = self.where(rel)
        name = rel.rsplit("/", 1)[-1]
        if not name.endswith(".json"):
            raise SubmissionError(f"{where} is not a submission file (submissions are <sha256>.json); move it "
                                  f"out of {SUBMISSIONS}/")
        try:
            doc = json.loads(self.read(rel).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SubmissionError(f"{where} is not valid JSON ({exc}): the file is corrupt (truncated or edited); "
                                  "restore it (e.g. `git checkout` in a git RESULTS folder) or delete it and "
                                  "publish that run again") from None
        doc = migrate(doc, where)
        validate(doc, where)
        digest = result_sha256(doc["result"])
        if name != f"{digest}.json":
            raise SubmissionError(f"{where}: its result hashes to {digest}, not to its file name: it was edited "
                                  "after publishing (or copied under another name). Published numbers are never "
                                  "edited in place: restore the file, or delete it and publish the corrected run")
        return doc

    def check_blob(self, rel: str, sha256: str, kind: str) -> str | None:
        """None when the blob is there with its hash; else the problem, naming the file."""
        if not self.exists(rel):
            return f"{self.where(rel)} is missing ({kind} of a submission); publish the run again to restore it"
        if kind == "samples":
            digest = hashlib.sha256(self.read(rel)).hexdigest()
            if digest != sha256:
                return f"{self.where(rel)} is corrupt (sha256 {digest[:12]}…, expected {sha256[:12]}…)"
        return None


@dataclass
class PublishReport:
    """What :func:`publish` did: the submissions written and those already there (by path)."""

    written: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    blobs_written: int = 0
    labels: dict[str, str] = field(default_factory=dict)


def publish(prepared: Iterable[Prepared], store: ResultsStore) -> PublishReport:
    """Write every submission (its blobs first, then the submission), each only if absent."""
    report = PublishReport()
    for p in prepared:
        for rel, data in p.blobs.items():
            report.blobs_written += store.write_once(rel, data)
        data = json.dumps(p.doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
        validate(json.loads(data), f"the submission made from {p.source}")  # what is written is what is read
        (report.written if store.write_once(p.path, data) else report.already).append(p.path)
        report.labels[p.path] = p.label()
    return report
