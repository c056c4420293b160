"""Atomic writes: unique temporary names, nothing left behind, concurrent writers safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mars_action.files import temp_beside, write_atomic


def test_temporary_names_are_unique_hidden_and_beside_the_target(tmp_path):
    target = tmp_path / "report.json"
    names = {temp_beside(target) for _ in range(100)}
    assert len(names) == 100
    assert all(n.parent == tmp_path and n.name.startswith(".report.json.") for n in names)


def test_concurrent_writers_of_one_file_leave_one_complete_copy(tmp_path):
    target = tmp_path / "sub" / "report.json"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: write_atomic(target, p), payloads * 4))
    assert target.read_bytes() in payloads
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]
