"""The SciFact part refuses data that differs from its published checksums."""

from __future__ import annotations

import hashlib

import pytest

from bench import scifact


def write_data_set(folder, files: dict[str, bytes]) -> None:
    lines = []
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_checksums_pass_for_untouched_files_and_name_each_file(tmp_path):
    write_data_set(tmp_path, {"corpus.jsonl": b'{"_id": "1"}\n', "qrels/test.tsv": b"query-id\tcorpus-id\tscore\n"})
    assert sorted(scifact.verify_checksums(tmp_path)) == ["corpus.jsonl", "qrels/test.tsv"]


def test_an_edited_file_stops_the_bench_and_is_named(tmp_path):
    write_data_set(tmp_path, {"corpus.jsonl": b'{"_id": "1"}\n'})
    (tmp_path / "corpus.jsonl").write_bytes(b'{"_id": "2"}\n')
    with pytest.raises(scifact.ChecksumMismatch, match="corpus.jsonl"):
        scifact.verify_checksums(tmp_path)


def test_a_missing_data_folder_says_where_it_looked(tmp_path):
    with pytest.raises(scifact.ChecksumMismatch, match="SCIFACT_DIR"):
        scifact.verify_checksums(tmp_path / "nowhere")
