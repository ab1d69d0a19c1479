"""The results hub: submissions (schema, hashes), publishing (content addressing, fsspec), the board (tables,
merged seeds, conflicts, contamination), bad input, and ``colorbench check --against RESULTS``."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from pathlib import Path

import numpy as np
import pytest

from colorbench.hub.board import ResultsError, build, build_board, load
from colorbench.hub.store import ResultsStore, publish
from colorbench.hub.submission import (SCHEMA_VERSION, SubmissionError, build_submissions, canonical_bytes,
                                       migrate, publisher_identity, result_sha256, validate)

from hub_fixtures import IDS, copy_run, edit_value, make_run, per_image


def _publish(run: Path, results: str | Path, by: str = "alice", host: str = "lab-a", meta=None):
    return publish(build_submissions(run, meta, publisher_identity(by, host)), ResultsStore(results))


def _row(board, method: str, table_index: int = 0):
    return next(r for r in board.tables[table_index].rows if r.method == method)


def test_submission_follows_the_schema_and_is_named_by_its_result(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    subs = build_submissions(run)
    assert [s.doc["result"]["cell"]["method"] for s in subs] == ["alpha", "beta"]
    doc = subs[0].doc
    assert doc["schema_version"] == SCHEMA_VERSION
    validate(doc, "in memory")  # what build_submissions checked already
    r = doc["result"]
    assert r["protocol"] == {"name": "colorbench", "version": "2"}
    assert r["cell"]["key"] == "alpha-s0-p2"
    assert r["dataset"]["test_sha256"] == "b" * 64 and r["dataset"]["sources"] == ["toyset"]
    assert r["metrics"]["mse"]["value"] == pytest.approx(per_image("alpha", 0)["mse"].mean())
    assert r["per_image"]["n_images"] == len(IDS) and r["per_image"]["keys"] == ["mse", "psnr"]
    assert r["method"]["parameter_count"] == 1000 and r["method"]["training_data"] == ["toyset:train"]
    assert r["method"]["licence"] is None  # not declared by the card: unknown, not invented
    assert subs[0].name == result_sha256(r) and len(subs[0].name) == 64
    # the name does not depend on who publishes or when
    again = build_submissions(run, published=publisher_identity("bob", "elsewhere"))
    assert again[0].name == subs[0].name


def test_card_metadata_fields_are_read_when_present(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", card_extra={"alpha": {"licence": "MIT", "training_data": ["imagenet-train"],
                                                           "weights": [{"name": "w", "file": "w.pth",
                                                                        "sha256": "ab" * 32}]}})
    meta = build_submissions(run)[0].doc["result"]["method"]
    assert meta["licence"] == "MIT"
    assert meta["training_data"] == ["imagenet-train", "toyset:train"]
    assert meta["weights"] == [{"name": "w", "file": "w.pth", "sha256": "ab" * 32}]


def test_publishing_twice_is_a_no_op_and_files_are_content_addressed(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    results = tmp_path / "results"
    first = _publish(run, results)
    assert len(first.written) == 2 and not first.already and first.blobs_written == 4  # 2 per-image + 2 samples
    files = sorted(p.name for p in (results / "submissions").iterdir())
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    second = _publish(run, results, by="bob")
    assert not second.written and len(second.already) == 2 and second.blobs_written == 0
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before
    for name in files:
        doc = json.loads((results / "submissions" / name).read_text())
        assert name == f"{result_sha256(doc['result'])}.json"
        assert doc["published"]["by"] == "alice"


def test_fsspec_memory_store_round_trip(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", seeds=(0, 1))
    uri = f"memory://hub-{uuid.uuid4().hex}"
    _publish(run, uri)
    assert len(_publish(run, uri).already) == 4
    board = build_board(uri)
    assert [r.method for r in board.tables[0].rows] == ["alpha", "beta"]
    assert _row(board, "alpha").stats["mse"]["n"] == 2
    # a local folder named by a file:// URI is the same store as its path
    folder = tmp_path / "results"
    _publish(run, f"file://{folder}")
    assert len(_publish(run, folder).already) == 4
    assert ResultsStore(f"file://{folder}").local and len(list((folder / "submissions").iterdir())) == 4


def _publish_in_process(args) -> int:
    run, results, by = args
    return len(_publish(Path(run), results, by=by).written)


def test_two_machines_publishing_at_once_need_no_lock(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", seeds=(0, 1))
    b = make_run(tmp_path / "b", seeds=(1, 2))  # seed 1 (the same result) is published by both at the same time
    results = tmp_path / "results"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        written = pool.map(_publish_in_process, [(str(a), str(results), "alice"), (str(b), str(results), "bob")])
    names = sorted(p.name for p in (results / "submissions").iterdir())
    assert len(names) == 6  # 3 seeds x 2 methods, seed 1 once
    assert sum(written) >= 6  # a file both wrote counts for both (the second rename replaces identical numbers)
    assert not [p for p in results.rglob(".*") if p.is_file()]  # no temporary file left
    board = build_board(str(results))  # every file valid, named by its content
    assert _row(board, "alpha").stats["mse"]["n"] == 3


def test_seeds_of_two_machines_merge_with_seed_statistics(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _publish(make_run(tmp_path / "a", seeds=(0, 1)), results, "alice", "lab-a")
    # another machine, another day: seed 1 computed again (same cell key, same values), seed 2 new
    _publish(make_run(tmp_path / "b", seeds=(1, 2), started="2026-12-02T09:00:00+00:00"), results, "bob", "lab-b")
    board = build_board(str(results))
    assert len(board.tables) == 1 and not board.conflicts
    alpha = _row(board, "alpha")
    means = [per_image("alpha", s)["mse"].mean() for s in (0, 1, 2)]
    assert alpha.stats["mse"]["n"] == 3
    assert alpha.stats["mse"]["mean"] == pytest.approx(np.mean(means))
    assert alpha.stats["mse"]["std"] == pytest.approx(np.std(means, ddof=1))
    assert {p["by"] for p in alpha.provenance()} == {"alice", "bob"}
    assert len(alpha.cells["alpha-s1-p2"]) == 2  # the shared cell, from both machines, agrees
    assert board.tables[0].best["mse"] == alpha.id and board.tables[0].paired
    assert alpha.ties == {} and _row(board, "beta").ties == {"mse": False, "psnr": False}


def test_an_edited_value_is_a_conflict_not_a_merge(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", seeds=(0,))
    b = copy_run(a, tmp_path / "b")
    true = per_image("alpha", 0)["mse"].mean()
    edit_value(b, "alpha", 0, "mse", true * 1.01)
    results = tmp_path / "results"
    _publish(a, results, "alice")
    _publish(b, results, "bob")
    board = build_board(str(results))
    conflicts = [c for c in board.conflicts if c.kind == "values"]
    assert len(conflicts) == 1 and "alpha" in conflicts[0].text and "mse" in conflicts[0].text
    assert all(f.startswith("submissions/") for f in conflicts[0].files) and len(set(conflicts[0].files)) == 2
    alpha = _row(board, "alpha")
    assert alpha.stats["mse"]["n"] == 1 and alpha.stats["mse"]["mean"] == pytest.approx(true)  # first published
    # within the tolerance it is no conflict
    assert not [c for c in build_board(str(results), rtol=0.02).conflicts if c.kind == "values"]


def test_another_protocol_version_or_metric_version_gets_its_own_table(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _publish(make_run(tmp_path / "a"), results)
    _publish(make_run(tmp_path / "b", protocol_version="1"), results)
    _publish(make_run(tmp_path / "c", psnr_version="3"), results)
    board = build_board(str(results))
    assert [(t.protocol, bool(t.split_reason)) for t in board.tables] == [
        ("colorbench/2", False), ("colorbench/2", True), ("colorbench/1", False)]
    assert "psnr" in board.tables[1].split_reason
    for t in board.tables:
        assert len(t.rows) == 2 and all(r.stats["mse"]["n"] == 1 for r in t.rows)
        assert sorted(t.others) == sorted(o.id for o in board.tables if o is not t)
        assert len({c.version for c in t.columns if c.key == "psnr"}) == 1


def test_contamination_is_marked(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", card_extra={"alpha": {"training_data": ["toyset-large:train"]},
                                                 "beta": {"training_data": ["otherset"]}})
    _publish(run, tmp_path / "results")
    board = build_board(str(tmp_path / "results"))
    assert _row(board, "alpha").contamination == ["toyset-large:train"]
    assert _row(board, "beta").contamination == []  # its own toyset:train split is the protocol's


def test_one_method_name_with_different_metadata_or_weights_is_flagged_and_kept_apart(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _publish(make_run(tmp_path / "a", methods=("alpha",)), results, meta={"alpha": {"licence": "MIT"}})
    _publish(make_run(tmp_path / "b", methods=("alpha",), seeds=(1,)), results, "bob",
             meta={"alpha": {"licence": "CC-BY-NC-4.0", "weights": [{"name": "g", "file": "g.pth", "sha256": "cd" * 32}]}})
    board = build_board(str(results))
    kinds = sorted(c.kind for c in board.conflicts)
    assert kinds == ["metadata", "weights"]
    text = next(c.text for c in board.conflicts if c.kind == "metadata")
    assert "licence" in text and "MIT" in text and "CC-BY-NC-4.0" in text
    files = sorted(p.name for p in (results / "submissions").iterdir())
    assert all(any(f in c.text for c in board.conflicts) for f in files)  # every file named
    rows = [r for r in board.tables[0].rows if r.method == "alpha"]
    assert len(rows) == 2 and all(r.stats["mse"]["n"] == 1 and r.conflicts for r in rows)  # never merged


def _write_doc(results: Path, doc: dict, name: str | None = None) -> Path:
    path = results / "submissions" / f"{name or result_sha256(doc['result'])}.json"
    path.write_text(json.dumps(doc))
    return path


def test_bad_files_are_named_and_never_merged(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _publish(make_run(tmp_path / "a"), results)
    good = sorted((results / "submissions").iterdir())
    doc = json.loads(good[0].read_text())
    # 1. fails the schema (a value that is not a number), saved under its own hash
    bad = json.loads(json.dumps(doc))
    bad["result"]["metrics"]["mse"]["value"] = "a lot"
    schema_file = _write_doc(results, bad)
    # 2. corrupt (truncated) file
    corrupt = results / "submissions" / ("c" * 64 + ".json")
    corrupt.write_text(good[1].read_text()[:100])
    # 3. a value edited in place: the name no longer matches the content
    edited = json.loads(json.dumps(doc))
    edited["result"]["metrics"]["mse"]["value"] = 1.0
    edited_file = _write_doc(results, edited, name="e" * 64)
    with pytest.raises(ResultsError) as err:
        build_board(str(results))
    msg = str(err.value)
    for path in (schema_file, corrupt, edited_file):
        assert str(path) in msg
    assert "mse/value" in msg or "metrics/mse/value" in msg
    assert "not valid JSON" in msg and "edited after publishing" in msg
    loaded = load(ResultsStore(results), strict=False)
    assert len(loaded.subs) == 2 and len(loaded.problems) == 3
    board = build(loaded)
    assert all(r.stats["mse"]["n"] == 1 for r in board.tables[0].rows)


def test_newer_schema_versions_and_foreign_files_are_refused() -> None:
    with pytest.raises(SubmissionError, match="upgrade colorbench"):
        migrate({"schema": "colorbench.submission", "schema_version": SCHEMA_VERSION + 1}, "f.json")
    with pytest.raises(SubmissionError, match="not a colorbench submission"):
        migrate({"schema": "colorbench.record/2"}, "f.json")


def test_records_of_the_earlier_layout_and_schema_publish(tmp_path: Path) -> None:
    """A run directory of the first layout (records/<method>.json, record schema 1, no protocol in its values)
    becomes submissions of protocol colorbench/1."""
    from html_fixtures import make_run_dir

    run = make_run_dir(tmp_path, layout="flat")
    for p in (run / "records").glob("*.json"):
        rec = json.loads(p.read_text())
        rec["schema"] = "colorbench.record/1"
        p.write_text(json.dumps(rec))
    subs = build_submissions(run)
    assert {s.doc["result"]["protocol"]["name"] + "/" + s.doc["result"]["protocol"]["version"] for s in subs} == {
        "colorbench/1"}
    assert {s.doc["result"]["cell"]["status"] for s in subs} == {"ok", "failed"}
    assert all(s.doc["result"]["run"]["record_schema"] == "colorbench.record/2" for s in subs)  # read, upgraded


def test_canonical_json_is_stable() -> None:
    assert canonical_bytes({"b": 1, "a": [1.5, float("inf")]}) == b'{"a":[1.5,"inf"],"b":1}'


def test_cli_publish_leaderboard_and_check_against_results(tmp_path: Path, capsys) -> None:
    from colorbench.commands.cli import main

    run = make_run(tmp_path / "run", seeds=(0,))
    results, site = tmp_path / "results", tmp_path / "site"
    assert main(["publish", str(run), "--to", str(results), "--by", "alice"]) == 0
    assert "2 new submission(s)" in capsys.readouterr().out
    assert main(["publish", str(run), "--to", str(results)]) == 0
    assert "0 new submission(s), 2 already published" in capsys.readouterr().out
    assert main(["leaderboard", str(results), "--out", str(site)]) == 0
    assert (site / "index.html").is_file() and (site / "methods" / "alpha.html").is_file()
    assert main(["check", str(run), "--against", str(results)]) == 0
    assert "OK: " in capsys.readouterr().out
    drifted = copy_run(run, tmp_path / "drifted")
    edit_value(drifted, "beta", 0, "psnr", 1.0)
    assert main(["check", str(drifted), "--against", str(results)]) == 1
    assert "DRIFT" in capsys.readouterr().out
    other = make_run(tmp_path / "other", seeds=(5,))  # nothing of it is published
    assert main(["check", str(other), "--against", str(results)]) == 1
    assert "not in it" in capsys.readouterr().out
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"alpah": {"licence": "MIT"}}))
    assert main(["publish", str(run), "--to", str(results), "--method-meta", str(meta)]) == 2
    assert "['alpah']" in capsys.readouterr().err
    # bad input: exit 2 with the file named
    (results / "submissions" / ("0" * 64 + ".json")).write_text("{")
    assert main(["leaderboard", str(results), "--out", str(site)]) == 2
    assert "0" * 64 + ".json" in capsys.readouterr().err
    assert main(["leaderboard", str(results), "--out", str(site), "--keep-going"]) == 0
    assert "0" * 64 in (site / "index.html").read_text()
    assert main(["leaderboard", str(tmp_path / "nothing"), "--out", str(site)]) == 2
    assert "publish a run into it first" in capsys.readouterr().err


def test_migrations_apply_step_by_step(monkeypatch) -> None:
    """The mechanism a schema version 2 will use: each step brings a submission one version up."""
    from colorbench.hub import submission

    def v1_to_v2(doc):
        return {**doc, "schema_version": 2, "migrated": True}

    monkeypatch.setattr(submission, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(submission.MIGRATIONS, 1, v1_to_v2)
    out = submission.migrate({"schema": "colorbench.submission", "schema_version": 1}, "f.json")
    assert out == {"schema": "colorbench.submission", "schema_version": 2, "migrated": True}
    monkeypatch.delitem(submission.MIGRATIONS, 1)
    with pytest.raises(SubmissionError, match="no migration from submission schema version 1"):
        submission.migrate({"schema": "colorbench.submission", "schema_version": 1}, "f.json")


def test_a_failed_cell_is_a_failed_row_with_its_reason(tmp_path: Path) -> None:
    _publish(make_run(tmp_path / "run", methods=("alpha", "beta", "gamma"), failed=("gamma",)), tmp_path / "results")
    board = build_board(str(tmp_path / "results"))
    gamma = _row(board, "gamma")
    assert gamma.status == "failed" and gamma.errors == ["RuntimeError: diverged"] and gamma.stats == {}
    assert [r.method for r in board.tables[0].rows][-1] == "gamma"  # failed rows last
    assert board.tables[0].best["mse"] == _row(board, "alpha").id


def test_a_row_that_lost_its_structure_takes_no_best_value(tmp_path: Path) -> None:
    """luma SSIM below the dataset's recorded threshold: marked, and never the bold best (as the run report)."""
    run = make_run(tmp_path / "run")
    for p in run.glob("cells/*/record.json"):
        rec = json.loads(p.read_text())
        rec["dataset"]["structure_references"] = {"threshold": 0.5}
        luma = 0.3 if rec["method"] == "alpha" else 0.9  # alpha: best MSE, but no structure
        rec["metrics"]["luma_ssim"] = {**rec["metrics"]["mse"], "value": luma, "metric": "luma_ssim",
                                       "higher_is_better": True}
        p.write_text(json.dumps(rec))
    _publish(run, tmp_path / "results")
    board = build_board(str(tmp_path / "results"))
    table = board.tables[0]
    assert table.structure_threshold == 0.5
    assert _row(board, "alpha").structure_lost and not _row(board, "beta").structure_lost
    assert table.best["mse"] == _row(board, "beta").id  # alpha's lower MSE does not count
