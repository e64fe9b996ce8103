"""A publication in separate steps (issue 15: sealing as mapped tasks that Celery workers share):
stage → pages ∥ sealing batches → complete gives the same version publish() gives; the last step
refuses when another version appeared meanwhile or the run folder's result changed."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from allocation import files
from allocation.errors import RoundError
from allocation.publish import lookup
from allocation.publish import version as v
from allocation.publish.audit import read as read_audit
from allocation.publish.verify import verify_round


@pytest.fixture
def run(solved_sample, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(solved_sample, out)
    return out


def _in_steps(out: Path, root: Path, per_batch: int = 2) -> dict:
    stage = v.stage_publication(out, root)
    if "result" in stage:
        return v.complete_publication(out, root)
    batches = v.chunk_batches(out, per_batch)
    assert sorted(k for batch in batches for k in batch) == list(range(stage["chunks"]))
    for i, batch in enumerate(reversed(batches)):     # any order, any worker
        v.seal_staged_chunks(out, batch, workers=2 if i == 0 else 1)   # (one batch in processes)
    v.write_staged_pages(out)
    return v.complete_publication(out, root)


def _tree(version: Path) -> dict[str, bytes]:
    return {p.relative_to(version).as_posix(): p.read_bytes() for p in sorted(version.rglob("*")) if p.is_file()}


def test_steps_give_the_version_publish_gives(run, tmp_path, monkeypatch, receipt_codes):
    monkeypatch.setattr(lookup, "CHUNK_ROWS", 3)          # several chunks, several batches
    monkeypatch.setattr(lookup, "SERIAL_BELOW", 0)        # sealed in worker processes
    stepped = _in_steps(run, tmp_path / "stepped", per_batch=3)
    assert stepped["created"] and stepped["version"] == 1
    assert not (run / files.PUBLISH_STAGE).exists() and not (run / files.LOOKUP_WORK).exists()
    round_root = Path(stepped["path"]).parent
    assert [p.name for p in round_root.iterdir() if p.name.startswith(".")] == []   # nothing staged left
    checked = verify_round(round_root)
    assert checked["ok"] and not checked["problems"], checked
    manifest = json.loads((Path(stepped["path"]) / files.MANIFEST).read_text())
    sealed = [p for p in Path(stepped["path"], files.LOOKUP_DIR).rglob("*.json")]
    assert manifest["lookup"]["files"] == len(sealed) >= len(receipt_codes)

    other = tmp_path / "run2"
    shutil.copytree(run.parent / "run", other)
    single = v.publish(other, tmp_path / "single")
    a, b = _tree(Path(stepped["path"])), _tree(Path(single["path"]))
    # the same public files; lookup file names and bytes differ only by the round's salt
    same = {k for k in a if not k.startswith(("r/", "manifest", "lookup.json", "r.sha256"))}
    assert same == {k for k in b if not k.startswith(("r/", "manifest", "lookup.json", "r.sha256"))}
    pages = {k for k in same if k.endswith((".csv", ".parquet", ".html"))}
    assert pages and all(a[k] == b[k] for k in pages if not k.endswith(".html")), \
        [k for k in pages if a[k] != b[k]]
    assert len([k for k in a if k.startswith("r/")]) == len([k for k in b if k.startswith("r/")])
    for application_id, code in receipt_codes.items():   # every applicant finds their record
        found = lookup.lookup_result(Path(stepped["path"]), application_id, code)
        assert found is not None and found["application_id"] == application_id, application_id


def test_unchanged_result_in_steps_publishes_nothing_and_is_audited(run, tmp_path):
    root = tmp_path / "pub"
    first = _in_steps(run, root)
    again = _in_steps(run, root)
    assert again == {**first, "created": False, "message": "unchanged: v1 kept"}
    assert [e["kind"] for e in read_audit(root, first["round_id"])] == ["allocation", "unchanged"]
    assert not (run / files.PUBLISH_STAGE).exists()


def test_complete_refuses_when_another_version_appeared_meanwhile(run, tmp_path):
    root = tmp_path / "pub"
    v.stage_publication(run, root)                  # this run stages v1 …
    other = tmp_path / "other"
    shutil.copytree(run, other)
    (other / files.PUBLISH_STAGE).unlink()
    outcomes = pl.read_parquet(other / "outcomes.parquet")
    outcomes.with_columns(copay_krw=pl.col("copay_krw") + 1).write_parquet(other / "outcomes.parquet")
    assert v.publish(other, root)["version"] == 1  # … another result is published as v1 first
    for batch in v.chunk_batches(run, 8):
        with pytest.raises(RoundError, match="staged version .* is gone"):   # superseded: removed
            v.seal_staged_chunks(run, batch)
    with pytest.raises(RoundError, match="v1 was published while this version was being written"):
        v.complete_publication(run, root)
    round_root = root / "2026-R1"
    assert sorted(p.name for p in round_root.iterdir()) == ["audit.jsonl", "signing_key.pub", "v1"]
    assert [e["version"] for e in read_audit(root, "2026-R1")] == [1]
    assert not (run / files.PUBLISH_STAGE).exists()
    assert _in_steps(run, root)["version"] == 2     # staged again: the next version


def test_complete_refuses_a_result_changed_after_staging(run, tmp_path):
    root = tmp_path / "pub"
    v.stage_publication(run, root)
    for batch in v.chunk_batches(run, 8):
        v.seal_staged_chunks(run, batch)
    v.write_staged_pages(run)
    outcomes = pl.read_parquet(run / "outcomes.parquet")
    outcomes.with_columns(copay_krw=pl.col("copay_krw") + 1).write_parquet(run / "outcomes.parquet")
    with pytest.raises(RoundError, match="no longer holds the result that was staged"):
        v.complete_publication(run, root)
    assert not any(p.name.startswith("v") for p in (root / "2026-R1").iterdir())
    assert read_audit(root, "2026-R1") == []


def test_complete_refuses_before_the_pages_or_the_sealing(run, tmp_path):
    root = tmp_path / "pub"
    with pytest.raises(RoundError, match="not staged"):
        v.complete_publication(run, root)
    v.stage_publication(run, root)
    with pytest.raises(RoundError, match="pages were not written"):
        v.complete_publication(run, root)
    v.write_staged_pages(run)
    with pytest.raises(RuntimeError, match="were not sealed"):
        v.complete_publication(run, root)
    assert not (run / files.PUBLISH_STAGE).exists()      # a failed last step: stage again
    with pytest.raises(RoundError, match="not staged"):
        v.seal_staged_chunks(run, [0])
    v.stage_publication(run, root)
    with pytest.raises(RoundError, match="not all in the staged plan"):
        v.seal_staged_chunks(run, [99])
    assert _in_steps(run, root)["version"] == 1


def test_abandoned_staged_folder_is_removed_by_the_next_publication(run, tmp_path, monkeypatch):
    root = tmp_path / "pub"
    stage = v.stage_publication(run, root)
    staged = Path(stage["staged"])
    assert staged.is_dir() and staged.name.startswith(files.STAGED_PREFIX + "v1-")
    fresh = tmp_path / "fresh"
    shutil.copytree(run, fresh)
    (fresh / files.PUBLISH_STAGE).unlink()
    monkeypatch.setattr(v, "STAGED_MAX_AGE_S", -1)      # as if a week had passed
    v.publish(fresh, root)
    assert not staged.exists()
