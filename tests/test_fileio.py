"""Atomic writes: the whole new content or the old file, never half of one."""

import json

import pytest

from data import fileio


def test_json_is_written_whole_path_first_and_leaves_no_temporary(tmp_path):
    scores = {"exact_match": 81.5, "f1": 88.25, "note": "é"}
    target = tmp_path / "sub" / "eval_results.json"
    fileio.write_json_atomic(target, scores, indent=4)
    assert target.read_text("utf-8") == json.dumps(scores, indent=4, ensure_ascii=False) + "\n"
    fileio.write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["eval_results.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    fileio.write_json_atomic(target, {"ok": 1})
    with pytest.raises(TypeError):
        fileio.write_json_atomic(target, {"not json": object()})
    with pytest.raises(TypeError):
        fileio.write_atomic(target, 12345)  # neither text nor bytes: fails while writing
    assert json.loads(target.read_text("utf-8")) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
