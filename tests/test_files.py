"""Atomic writes: concurrent writers of one file never fail or tear it, and a failed write changes nothing."""

import multiprocessing

import pytest

from model_discovery.files import atomic_path, atomic_write

WRITERS, WRITES, SIZE = 4, 200, 64 * 1024


def _write_many(args: tuple[str, int]) -> None:
    """One process's writes: every byte of a write is the writer's id, so a torn file shows two ids."""
    path, writer = args
    for _ in range(WRITES):
        atomic_write(path, bytes([writer]) * SIZE)


def test_concurrent_writers_leave_one_complete_write_and_no_temp_file(tmp_path):
    target = tmp_path / "shared" / "tokens.bin"
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        pool.map(_write_many, [(str(target), w) for w in range(WRITERS)])
    data = target.read_bytes()
    assert len(data) == SIZE and data == bytes([data[0]]) * SIZE and data[0] < WRITERS
    assert [p.name for p in target.parent.iterdir()] == ["tokens.bin"]


def test_a_failing_writer_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_text_is_utf8_and_permissions_are_those_of_a_plain_open(tmp_path):
    atomic_write(tmp_path / "new" / "source.py", "α = 1")
    assert (tmp_path / "new" / "source.py").read_bytes() == "α = 1".encode()
    plain = tmp_path / "plain"
    plain.write_text("")
    assert (tmp_path / "new" / "source.py").stat().st_mode == plain.stat().st_mode


def test_the_writer_gets_a_path_of_its_own_beside_the_target(tmp_path):
    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "a.json").read_text() == "1"  # the later replace wins
