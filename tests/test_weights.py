"""``colorbench weights``: the registry of pretrained files, the shared lookup, and ``fetch`` against a local HTTP
server on 127.0.0.1 (a good file, a truncated one, a wrong hash, a missing one, no server at all)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from colorbench.core import weights as W
from colorbench.commands.cli import main

GOOD = b"colorbench weights fixture\n" * 4000  # ~100 kB: several 64 kB read blocks
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/good"):
            body, length = GOOD, len(GOOD)
        elif self.path.startswith("/truncated"):  # announces the whole file, then drops the connection
            body, length = GOOD[: len(GOOD) // 3], len(GOOD)
        elif self.path.startswith("/wrong"):
            body, length = GOOD[::-1], len(GOOD)
        else:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused at once): the 'offline' case."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def entry(url: str, sha: str = GOOD_SHA, name: str = "fixture") -> W.WeightsFile:
    return W.WeightsFile(name, f"{name}-file.pth", url, sha, ("tests",), "test fixture", hash_source="fixture")


def _no_leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fetch_good_file_full_hash_and_prefix(server, tmp_path):
    dest = W.fetch_file(entry(f"{server}/good"), tmp_path, progress=False)
    assert dest == tmp_path / "fixture-file.pth" and dest.read_bytes() == GOOD
    assert _no_leftovers(tmp_path) == ["fixture-file.pth"]  # the .part file was moved into place
    # a published prefix (torch hub convention) is checked as a prefix
    prefixed = entry(f"{server}/good", GOOD_SHA[:8], name="prefixed")
    assert not prefixed.full_hash and W.fetch_file(prefixed, tmp_path, progress=False).read_bytes() == GOOD


def test_fetch_truncated_file_leaves_nothing(server, tmp_path):
    with pytest.raises(W.FetchError, match=r"truncated download, got 36000 of 108000 bytes|interrupted"):
        W.fetch_file(entry(f"{server}/truncated"), tmp_path, progress=False)
    assert _no_leftovers(tmp_path) == []


def test_fetch_wrong_hash_leaves_nothing_and_keeps_the_old_file(server, tmp_path):
    old = tmp_path / "fixture-file.pth"
    old.write_bytes(b"previous")
    with pytest.raises(W.FetchError, match="wrong file, SHA-256 .* does not match the published hash"):
        W.fetch_file(entry(f"{server}/wrong"), tmp_path, progress=False)
    assert _no_leftovers(tmp_path) == ["fixture-file.pth"] and old.read_bytes() == b"previous"
    with pytest.raises(W.FetchError, match="HTTP 404"):
        W.fetch_file(entry(f"{server}/missing"), tmp_path, progress=False)


def test_fetch_offline_fails_at_once_listing_every_missing_file(closed_port_url, tmp_path, monkeypatch):
    fake = {n: dataclasses.replace(W.WEIGHTS[n], url=f"{closed_port_url}/{W.WEIGHTS[n].file_name}")
            for n in ("zhang-eccv16", "zhang-siggraph17", "alexnet")}
    monkeypatch.setattr(W, "WEIGHTS", {**W.WEIGHTS, **fake})
    calls = []
    real = W.fetch_file
    monkeypatch.setattr(W, "fetch_file", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    with pytest.raises(W.Offline) as err:
        W.fetch(["zhang-eccv16", "zhang-siggraph17", "alexnet"], tmp_path, progress=False, log=lambda s: None)
    assert calls == ["zhang-eccv16"]  # no attempt after the first unreachable server
    text = str(err.value)
    for name in fake:
        assert fake[name].url in text and str(tmp_path / fake[name].file_name) in text
    assert _no_leftovers(tmp_path) == []


def test_cli_fetch_verify_list(server, closed_port_url, tmp_path, monkeypatch, capsys):
    good = dataclasses.replace(W.WEIGHTS["zhang-eccv16"], url=f"{server}/good", sha256=GOOD_SHA[:8])
    monkeypatch.setattr(W, "WEIGHTS", {**W.WEIGHTS, "zhang-eccv16": good})
    assert main(["weights", "fetch", "zhang-eccv16", "--dir", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "colorization_release_v2-9b330a0b.pth").read_bytes() == GOOD
    assert main(["weights", "fetch", "zhang-eccv16", "--dir", str(tmp_path)]) == 0  # already there
    assert "already at" in capsys.readouterr().out
    assert main(["weights", "verify", "zhang-eccv16", "--dir", str(tmp_path)]) == 0
    assert main(["weights", "verify", "zhang-siggraph17", "--dir", str(tmp_path)]) == 1  # named and missing
    (tmp_path / "colorization_release_v2-9b330a0b.pth").write_bytes(b"corrupt")
    capsys.readouterr()
    assert main(["weights", "verify", "--dir", str(tmp_path)]) == 1
    assert "BAD HASH" in capsys.readouterr().out
    assert main(["weights", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth" in out
    assert "df00044c (prefix only)" in out and str(tmp_path / "siggraph17-df00044c.pth") in out
    assert main(["weights", "fetch", "no-such-file"]) == 2
    assert "unknown weights file 'no-such-file'" in capsys.readouterr().err
    off = dataclasses.replace(W.WEIGHTS["zhang-siggraph17"], url=f"{closed_port_url}/x.pth")
    monkeypatch.setattr(W, "WEIGHTS", {**W.WEIGHTS, "zhang-siggraph17": off})
    assert main(["weights", "fetch", "zhang-siggraph17", "--dir", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Files still missing" in err and str(tmp_path / "siggraph17-df00044c.pth") in err


def test_registry_agrees_with_the_libraries():
    """The URLs and file names are the ones torchvision itself uses (so a file fetched by either serves both),
    every torch hub name carries its hash prefix, and the bundled lpips files are the installed ones."""
    import torchvision.models as tvm

    for name, enum in (("alexnet", tvm.AlexNet_Weights), ("vgg16", tvm.VGG16_Weights),
                       ("squeezenet1_1", tvm.SqueezeNet1_1_Weights), ("inception-v3", tvm.Inception_V3_Weights),
                       ("resnet50", tvm.ResNet50_Weights)):
        assert W.WEIGHTS[name].url == enum.IMAGENET1K_V1.url
    for e in W.WEIGHTS.values():
        if e.kind == "download":
            assert e.url.endswith("/" + e.file_name)
            # torch hub names carry their hash prefix; files published with a full SHA-256 (DDColor's) need not
            assert e.full_hash or e.file_name.rsplit(".", 1)[0].endswith("-" + e.sha256)
            assert e.path() == Path(os.path.join(W.default_root(), e.file_name))
        else:
            assert e.full_hash and W.status(e, hash_files=True) == "ok"


def test_require_names_file_path_and_url(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(W, "_STAND_INS", {})  # no test stand-ins (tests/conftest.py) in force

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(W.WeightsUnavailable) as err:
            W.require("zhang-siggraph17", who="zhang-siggraph17")
        dest = tmp_path / "hub" / "checkpoints" / "siggraph17-df00044c.pth"
        msg = str(err.value)
        assert str(dest) in msg and W.WEIGHTS["zhang-siggraph17"].url in msg and "weights fetch" in msg
        dest.parent.mkdir(parents=True)
        dest.write_bytes(b"not it")
        with pytest.raises(W.WeightsUnavailable, match="SHA-256 prefix"):
            W.require("zhang-siggraph17")
        assert W.require("zhang-siggraph17", check_hash=False) == dest
    finally:
        torch.hub.set_dir(old)
    with pytest.raises(Exception, match="unknown weights file 'lpips-alex'"):
        W.get("lpips-alex")
