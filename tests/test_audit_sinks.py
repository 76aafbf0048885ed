"""The audit sinks: the JSON Lines file (rotation by size and by age, retention, resuming after a
restart, a torn last line, a failed write leaving nothing behind) and stdout."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from collector.audit.chain import Chain, verify
from collector.audit.config import format_time
from collector.audit.sinks import JsonlFileSink, StdoutSink, dumps

ROTATED = re.compile(r"audit-([0-9]{8}T[0-9]{6}Z)-([0-9]{12})\.jsonl")
T0 = 1735689600.0  # 2025-01-01T00:00:00Z


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _sealed(chain: Chain, n: int, clock: Clock | None = None, pad: int = 0) -> list[dict]:
    return [chain.seal({"time": format_time(clock() if clock else T0), "tool": "t", "pad": "x" * pad})
            for _ in range(n)]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _all_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("audit*.jsonl"))


def test_records_are_appended_one_a_line_and_flushed_per_batch(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl")
    chain = Chain()
    first, second = _sealed(chain, 3), _sealed(chain, 2)
    sink.write(first)
    assert _read(tmp_path / "audit.jsonl") == first  # readable before close
    sink.write(second)
    sink.close()
    assert _read(tmp_path / "audit.jsonl") == first + second
    assert verify([tmp_path / "audit.jsonl"], None).records == 5


def test_rotation_by_size(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=2000, rotate_every=None)
    chain = Chain()
    for _ in range(10):
        sink.write(_sealed(chain, 5, pad=50))
    sink.close()
    rotated = sink.rotated()
    assert len(rotated) >= 5 and all(ROTATED.fullmatch(p.name) for p in rotated)
    assert all(p.stat().st_size <= 2000 for p in [*rotated, sink.path])
    # the names sort in chain order: each holds its first record's seq
    assert [int(ROTATED.fullmatch(p.name).group(2)) for p in rotated] == [_read(p)[0]["seq"] for p in rotated]
    assert sorted(p.name for p in rotated) == [p.name for p in rotated]
    verdict = verify(_all_files(tmp_path), None)
    assert verdict.ok and verdict.records == 50 and verdict.files[-1] == sink.path


def test_one_record_larger_than_max_bytes_still_goes_to_one_file(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=100, rotate_every=None)
    chain = Chain()
    sink.write(_sealed(chain, 3, pad=300))
    sink.close()
    assert len(sink.rotated()) == 2 and len(_read(sink.path)) == 1
    assert verify(_all_files(tmp_path), None).records == 3


def test_rotation_by_age(tmp_path):
    clock = Clock()
    sink = JsonlFileSink(tmp_path / "audit.jsonl", rotate_every=3600, clock=clock)
    chain = Chain()
    sink.write(_sealed(chain, 2, clock))
    clock.now += 3599
    sink.write(_sealed(chain, 2, clock))
    assert sink.rotated() == []
    clock.now += 1
    sink.write(_sealed(chain, 1, clock))
    [rotated] = sink.rotated()
    assert rotated.name == "audit-20250101T000000Z-000000000001.jsonl"
    assert [r["seq"] for r in _read(rotated)] == [1, 2, 3, 4] and [r["seq"] for r in _read(sink.path)] == [5]
    clock.now += 7200
    sink.write(_sealed(chain, 1, clock))
    assert [p.name for p in sink.rotated()][-1] == "audit-20250101T010000Z-000000000005.jsonl"
    sink.close()
    assert verify(_all_files(tmp_path), None).records == 6


def test_retention_deletes_old_rotated_files(tmp_path):
    clock = Clock()
    day = 86400
    sink = JsonlFileSink(tmp_path / "audit.jsonl", rotate_every=day, retention=3 * day, clock=clock)
    chain = Chain()
    for _ in range(6):  # one file a day
        sink.write(_sealed(chain, 2, clock))
        clock.now += day
    sink.write(_sealed(chain, 1, clock))
    sink.close()
    # rotated at day 1..6; at day 6 the files rotated at days 1 and 2 are more than 3 days old
    kept = [ROTATED.fullmatch(p.name).group(1) for p in sink.rotated()]
    assert kept == ["20250103T000000Z", "20250104T000000Z", "20250105T000000Z", "20250106T000000Z"]
    assert sink.path.exists()  # the current file is never deleted
    verdict = verify(_all_files(tmp_path), None)
    assert verdict.ok and verdict.first_seq == 5 and verdict.starts_after_retention
    # and at start: a sink opened much later deletes every expired one
    later = JsonlFileSink(tmp_path / "audit.jsonl", retention=3 * day, clock=Clock(clock.now + 10 * day))
    assert later.rotated() == []
    later.close()


def test_a_restarted_sink_resumes_the_chain(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=1000, rotate_every=None)
    chain = Chain()
    sink.write(_sealed(chain, 10, pad=40))
    sink.close()
    again = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=1000, rotate_every=None)
    resumed = Chain.resume(again.last_record())
    assert resumed.last_seq == 10 and resumed.last_hash == chain.last_hash
    again.write(_sealed(resumed, 10, pad=40))
    again.close()
    verdict = verify(_all_files(tmp_path), None)
    assert verdict.ok and verdict.records == 20


def test_an_empty_current_file_resumes_from_the_newest_rotated_one(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl", rotate_every=None)
    chain = Chain()
    sink.write(_sealed(chain, 3))
    sink.rotate()
    sink.close()
    assert sink.path.stat().st_size == 0
    again = JsonlFileSink(tmp_path / "audit.jsonl")
    assert again.last_record()["seq"] == 3
    again.close()
    assert JsonlFileSink(tmp_path / "new" / "audit.jsonl").last_record() is None


def test_a_torn_last_line_is_dropped_at_start(tmp_path, caplog):
    path = tmp_path / "audit.jsonl"
    chain = Chain()
    records = _sealed(chain, 3)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + json.dumps(_sealed(chain, 1)[0])[:30])
    sink = JsonlFileSink(path, rotate_every=None)
    resumed = Chain.resume(sink.last_record())
    assert resumed.last_seq == 3
    sink.write(_sealed(resumed, 2))
    sink.close()
    assert [r["seq"] for r in _read(path)] == [1, 2, 3, 4, 5] and verify([path], None).ok
    assert "dropping a torn last line of 30 bytes" in caplog.text


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "audit.jsonl"
    chain = Chain()
    records = _sealed(chain, 2)
    path.write_text(json.dumps(records[0]) + "\n" + json.dumps(records[1]))
    sink = JsonlFileSink(path, rotate_every=None)
    sink.write(_sealed(Chain.resume(sink.last_record()), 1))
    sink.close()
    assert [r["seq"] for r in _read(path)] == [1, 2, 3]


def test_the_age_of_the_current_file_survives_a_restart(tmp_path):
    clock = Clock()
    sink = JsonlFileSink(tmp_path / "audit.jsonl", rotate_every=3600, clock=clock)
    chain = Chain()
    sink.write(_sealed(chain, 1, clock))
    sink.close()
    clock.now += 4000
    again = JsonlFileSink(tmp_path / "audit.jsonl", rotate_every=3600, clock=clock)
    again.write(_sealed(chain, 1, clock))  # the file was started 4000s ago, by its first record's time
    again.close()
    assert [p.name for p in again.rotated()] == ["audit-20250101T000000Z-000000000001.jsonl"]


class FailingFile:
    """A file whose writes fail after `allowed` of them (a full disk)."""

    def __init__(self, inner, allowed: int):
        self.inner, self.allowed = inner, allowed

    def write(self, data: bytes) -> int:
        if self.allowed <= 0:
            raise OSError(28, "No space left on device")
        self.allowed -= 1
        n = self.inner.write(data)
        self.inner.flush()  # as if the buffer had reached the disk
        return n

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_failed_write_leaves_nothing_behind_and_its_retry_writes_each_record_once(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl")
    chain = Chain()
    sink.write(_sealed(chain, 2))
    batch = _sealed(chain, 5)
    real = sink._file
    sink._file = FailingFile(real, allowed=3)
    with pytest.raises(OSError, match="No space"):
        sink.write(batch)
    assert [r["seq"] for r in _read(sink.path)] == [1, 2]  # the partial batch was taken back
    sink._file = real
    sink.write(batch)
    sink.close()
    assert [r["seq"] for r in _read(sink.path)] == [1, 2, 3, 4, 5, 6, 7]


def test_a_retry_after_a_failure_past_a_rotation_skips_what_the_rotated_file_holds(tmp_path):
    batch = _sealed(Chain(), 6, pad=100)
    line = len(dumps(batch[-1])) + 1
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=3 * line + 2, rotate_every=None)  # 3 records a file
    original_rotate = sink.rotate

    def rotate_then_fail():  # seq 1..3 reach the rotated file, then the disk fills at seq 5
        target = original_rotate()
        sink._file = FailingFile(sink._file, allowed=1)
        return target

    sink.rotate = rotate_then_fail
    with pytest.raises(OSError):
        sink.write(batch)
    sink.rotate = original_rotate
    sink._file = sink._file.inner
    assert sink.path.stat().st_size == 0  # seq 4 was taken back
    sink.write(batch)  # the writer retries the whole batch
    sink.close()
    assert [r["seq"] for r in _read(sink.path)] == [4, 5, 6]
    seqs = [r["seq"] for p in _all_files(tmp_path) for r in _read(p)]
    assert sorted(seqs) == [1, 2, 3, 4, 5, 6]
    assert verify(_all_files(tmp_path), None).ok


def test_stdout_sink():
    stream = io.StringIO()
    sink = StdoutSink(stream)
    records = _sealed(Chain(), 2)
    sink.write(records)
    sink.close()
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == records
    assert sink.last_record() is None and sink.name == "stdout"


def test_non_json_values_are_written_as_text_and_still_verify(tmp_path):
    sink = JsonlFileSink(tmp_path / "audit.jsonl")
    sink.write([Chain().seal({"path": Path("/srv/x"), "when": T0})])
    sink.close()
    assert _read(sink.path)[0]["path"] == str(Path("/srv/x"))
    assert verify([sink.path], None).ok


def test_bad_max_bytes():
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        JsonlFileSink(os.devnull, max_bytes=0)


def test_one_process_writes_a_file_at_a_time(tmp_path):
    """Two writers on one file would interleave two chains: the second is refused until the
    first is closed."""
    path = tmp_path / "audit" / "mcp.jsonl"
    first = JsonlFileSink(path)
    with pytest.raises(ValueError, match="being written by another process"):
        JsonlFileSink(path)
    JsonlFileSink(tmp_path / "audit" / "other.jsonl").close()  # another file is another chain
    first.close()
    JsonlFileSink(path).close()
