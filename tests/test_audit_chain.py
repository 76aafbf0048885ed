"""The audit chain: sealing, resuming, and verification naming the first record removed,
changed or reordered, with its file and line."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from pathlib import Path

import pytest

from collector.audit.chain import (
    GENESIS,
    Chain,
    canonical,
    chain_order,
    digest,
    key_from_env,
    last_record,
    verify,
)

KEY = b"k3y-for-the-tests"


def _records(n: int, chain: Chain) -> list[dict]:
    return [chain.seal({"time": f"2025-01-01T00:00:{i:02d}.000Z", "tool": "read_file", "user": "ünïcode",
                        "status": "success" if i % 3 else "error", "n": i}) for i in range(n)]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.fixture
def rotated(tmp_path) -> list[Path]:
    """12 records over three files, as rotation leaves them (the current file last)."""
    records = _records(12, Chain(KEY))
    return [_write(tmp_path / "audit-20250101T000000Z-000000000001.jsonl", records[:4]),
            _write(tmp_path / "audit-20250102T000000Z-000000000005.jsonl", records[4:9]),
            _write(tmp_path / "audit.jsonl", records[9:])]


# --- sealing ----------------------------------------------------------------------------------


def test_seal_links_each_record_to_the_one_before():
    chain = Chain()
    original = {"tool": "t", "seq": 99, "hash": "forged"}
    first, second = chain.seal(original), chain.seal({"tool": "u"})
    assert original == {"tool": "t", "seq": 99, "hash": "forged"}  # not changed in place
    assert (first["seq"], first["prev"], second["seq"], second["prev"]) == (1, GENESIS, 2, first["hash"])
    body = {k: v for k, v in first.items() if k != "hash"}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert first["hash"] == expected
    assert (chain.last_seq, chain.last_hash) == (2, second["hash"])


def test_hmac_with_a_key():
    sealed = Chain(KEY).seal({"tool": "t"})
    body = canonical(sealed)
    assert sealed["hash"] == hmac.new(KEY, body, hashlib.sha256).hexdigest() != hashlib.sha256(body).hexdigest()


def test_canonical_form_ignores_key_order_and_keeps_unicode():
    assert canonical({"b": 1, "a": "é", "hash": "x"}) == canonical({"a": "é", "b": 1}) == '{"a":"é","b":1}'.encode()
    assert digest({"a": 1}) != digest({"a": 2})


def test_resume_continues_the_chain(tmp_path):
    first = _records(3, Chain())
    path = _write(tmp_path / "a.jsonl", first)
    chain = Chain.resume(last_record(path))
    more = _records(2, chain)
    assert [r["seq"] for r in more] == [4, 5] and more[0]["prev"] == first[-1]["hash"]
    _write(path, first + more)
    assert verify([path], None).ok
    assert Chain.resume(None).last_seq == 0
    with pytest.raises(TypeError, match="no seq or hash"):
        Chain.resume({"seq": "3"})


def test_last_record_skips_a_torn_line_and_reads_across_chunks(tmp_path):
    records = _records(50, Chain())
    path = _write(tmp_path / "a.jsonl", records)
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"seq": 51, "prev": "trunc')
    assert last_record(path, chunk=7)["seq"] == 50
    assert last_record(path)["hash"] == records[-1]["hash"]
    assert last_record(tmp_path / "missing.jsonl") is None
    (tmp_path / "empty.jsonl").write_text("")
    assert last_record(tmp_path / "empty.jsonl") is None


def test_key_from_env():
    assert key_from_env("K", {"K": "sekrit"}) == b"sekrit"
    assert key_from_env("K", {"K": ""}) is None and key_from_env("K", {}) is None


# --- verification -----------------------------------------------------------------------------


def test_an_intact_chain_over_rotated_files_given_in_any_order(rotated):
    shuffled = rotated[::-1]
    random.Random(1).shuffle(shuffled)
    verdict = verify(shuffled, KEY)
    assert verdict.ok and verdict.records == 12 and (verdict.first_seq, verdict.last_seq) == (1, 12)
    assert verdict.files == rotated == chain_order(shuffled)
    assert verdict.summary() == "intact: 12 records, seq 1..12, 3 files"


def test_a_deleted_record_is_named(rotated):
    lines = _lines(rotated[1])
    del lines[2]  # seq 7
    rotated[1].write_text("".join(lines), encoding="utf-8")
    verdict = verify(rotated, KEY)
    assert not verdict.ok and verdict.kind == "removed"
    assert (verdict.path, verdict.line, verdict.seq) == (rotated[1], 3, 8)
    assert verdict.message == f"{rotated[1]}:3 (seq 8): seq 7 removed before it"
    assert verdict.records == 6  # seq 1..6 verified before it


def test_a_deleted_middle_file_is_named(rotated):
    verdict = verify([rotated[0], rotated[2]], KEY)
    assert verdict.kind == "removed" and verdict.message == f"{rotated[2]}:1 (seq 10): seq 5..9 removed before it"


def test_an_edited_field_is_named(rotated):
    lines = _lines(rotated[0])
    record = json.loads(lines[2])
    record["status"] = "success" if record["status"] == "error" else "error"
    lines[2] = json.dumps(record) + "\n"
    rotated[0].write_text("".join(lines), encoding="utf-8")
    verdict = verify(rotated, KEY)
    assert verdict.kind == "changed" and (verdict.path, verdict.line, verdict.seq) == (rotated[0], 3, 3)
    assert "was changed" in verdict.message


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(tmp_path):
    records = _records(5, Chain())
    records[2]["user"] = "mallory"
    records[2]["hash"] = digest(records[2])  # possible without a key, and caught at the next record
    path = _write(tmp_path / "a.jsonl", records)
    verdict = verify([path], None)
    assert verdict.kind == "changed" and (verdict.line, verdict.seq) == (4, 4)
    assert "prev does not match the hash of seq 3" in verdict.message


def test_two_swapped_records_are_named(rotated):
    lines = _lines(rotated[1])
    lines[1], lines[3] = lines[3], lines[1]  # seq 6 and 8
    rotated[1].write_text("".join(lines), encoding="utf-8")
    verdict = verify(rotated, KEY)
    assert verdict.kind == "reordered" and (verdict.path, verdict.line, verdict.seq) == (rotated[1], 2, 8)
    assert verdict.message == f"{rotated[1]}:2 (seq 8) is out of order: seq 6 comes later, at {rotated[1]}:4"


def test_a_record_moved_back_is_named(tmp_path):
    records = _records(5, Chain())
    path = _write(tmp_path / "a.jsonl", [records[0], records[1], records[2], records[4], records[3]])
    verdict = verify([path], None)
    assert verdict.kind == "reordered" and verdict.line == 4
    records = _records(5, Chain())
    path = _write(tmp_path / "b.jsonl", [records[0], records[1], records[0], records[2]])
    verdict = verify([path], None)
    assert verdict.kind == "reordered" and verdict.message == f"{path}:3 (seq 1) is out of order: it comes after seq 2"


def test_a_truncated_last_line_is_named(rotated):
    text = rotated[2].read_text(encoding="utf-8")
    rotated[2].write_text(text[:-40], encoding="utf-8")
    verdict = verify(rotated, KEY)
    assert verdict.kind == "not_json" and (verdict.path, verdict.line) == (rotated[2], 3)
    assert verdict.message == f"{rotated[2]}:3 is not JSON (a truncated last line)"
    assert verdict.records == 11


def test_a_line_that_is_not_a_record(tmp_path):
    records = _records(3, Chain())
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(records[0]) + "\n[1, 2]\n" + json.dumps(records[1]) + "\n")
    assert verify([path], None).message == f"{path}:2 is not a JSON object"
    path.write_text(json.dumps(records[0]) + "\n" + json.dumps({"seq": 2}) + "\n")
    assert verify([path], None).message == f"{path}:2 has no seq, prev or hash"


def test_a_wrong_key_is_named(rotated):
    verdict = verify(rotated, b"another key")
    assert verdict.kind == "wrong_key" and (verdict.path, verdict.line, verdict.seq) == (rotated[0], 1, 1)
    assert "wrong key" in verdict.message
    verdict = verify(rotated, None)
    assert verdict.kind == "wrong_key" and verdict.message.endswith("the records were sealed with a key: give it")


def test_a_key_given_for_records_sealed_without_one(tmp_path):
    path = _write(tmp_path / "a.jsonl", _records(3, Chain()))
    verdict = verify([path], KEY)
    assert verdict.kind == "wrong_key" and "sealed without a key" in verdict.message


def test_the_first_record_changed_is_not_taken_for_a_wrong_key(rotated):
    lines = _lines(rotated[0])
    record = json.loads(lines[0])
    record["tool"] = "delete_everything"
    lines[0] = json.dumps(record) + "\n"
    rotated[0].write_text("".join(lines), encoding="utf-8")
    verdict = verify(rotated, KEY)
    assert verdict.kind == "changed" and (verdict.line, verdict.seq) == (1, 1)


def test_a_set_whose_older_files_were_deleted_starts_where_it_starts(rotated):
    verdict = verify(rotated[1:], KEY)
    assert verdict.ok and verdict.starts_after_retention and (verdict.first_seq, verdict.records) == (5, 8)
    assert verdict.summary().startswith("intact: 8 records, seq 5..12, 2 files (starts at seq 5")


def test_a_forged_first_record_claiming_seq_1(tmp_path):
    record = Chain().seal({"tool": "t"})
    record["prev"] = "f" * 64
    record["hash"] = digest(record)
    path = _write(tmp_path / "a.jsonl", [record])
    assert verify([path], None).message == f"{path}:1 (seq 1): prev is not the genesis hash"


def test_an_empty_set_and_a_missing_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert verify([empty], None).summary() == "intact: 0 records, 1 file"
    verdict = verify([tmp_path / "missing.jsonl"], None)
    assert verdict.kind == "unreadable" and "missing.jsonl" in verdict.message


def test_an_oversized_line_is_never_read_whole(tmp_path, monkeypatch):
    """A damaged file may hold anything: verify names a line over the bound as not a record,
    and the chain resumes from the last sealed record before it, without holding it."""
    from collector.audit import chain as chain_module

    path = tmp_path / "audit.jsonl"
    chain = Chain()
    path.write_text("".join(json.dumps(chain.seal({"n": n})) + "\n" for n in range(3)))
    with open(path, "a") as file:
        file.write('{"junk": "' + "x" * 5000 + '"}\n')
    monkeypatch.setattr(chain_module, "MAX_LINE_BYTES", 1000)
    verdict = verify([path])
    assert not verdict.ok and verdict.line == 4 and "is longer than 1000 bytes" in verdict.message
    assert last_record(path, chunk=300, max_line_bytes=1000)["n"] == 2
