"""Tests of flanjax.data.readers on small files with literal contents."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flanjax.data import readers
from flanjax.data.readers import (
    DataFileError,
    read_csv,
    read_jsonl,
    read_labeled_lines,
    read_tsv,
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.write_bytes(data)
    return path


def error_of(gen_fn: Callable[..., Iterator[Any]], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DataFileError) as info:
        list(gen_fn(*args, **kwargs))
    return str(info.value)


# ----------------------------------------------------------------- JSON Lines


def test_jsonl_reads_objects_skips_blank_lines_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '\ufeff{"x": 1}\n\n  \n{"x": [2, "é"]}\n')
    assert list(read_jsonl(path)) == [{"x": 1}, {"x": [2, "é"]}]


def test_jsonl_without_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"x": 1}\r\n{"x": 2}')
    assert list(read_jsonl(path)) == [{"x": 1}, {"x": 2}]


def test_jsonl_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "train.jsonl", '{"a": 1}\n{"a": 1 "b": 2}\n{"a": 3}\n')
    message = error_of(read_jsonl, path)
    assert message.startswith(f"{path}:2: invalid JSON (Expecting ',' delimiter")
    assert "train.jsonl:2:" in message


def test_jsonl_non_object_names_type(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", '{"a": 1}\n{"a": 2}\n[1, 2]\n')
    assert error_of(read_jsonl, path) == f"{path}:3: a JSON object is required, got list"


def test_jsonl_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", b'{"a": 1}\n{"a": "\xff"}\n')
    message = error_of(read_jsonl, path)
    assert message.startswith(f"{path}:2: invalid UTF-8 (")


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_jsonl_without_records(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "empty.jsonl", content)
    assert error_of(read_jsonl, path) == f"{path}: no records"


def test_readers_stream_records_before_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", '{"a": 1}\n{"a": 2}\nnot json\n')
    records = read_jsonl(path)
    assert next(records) == {"a": 1}
    assert next(records) == {"a": 2}
    with pytest.raises(DataFileError, match=re.escape(f"{path}:3: invalid JSON")):
        next(records)


@pytest.mark.parametrize("reader", [read_jsonl, read_csv, read_tsv, read_labeled_lines])
def test_readers_are_generator_functions(reader: Callable[..., Any]) -> None:
    assert inspect.isgeneratorfunction(reader)


def test_data_file_error_is_a_value_error() -> None:
    assert issubclass(DataFileError, ValueError)


# -------------------------------------------------------------- missing files


def test_missing_file_under_data_dir_hints_at_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(readers.DATA_DIR_ENV, raising=False)
    path = tmp_path / "data" / "train" / "rte.jsonl"
    with pytest.raises(FileNotFoundError) as info:
        list(read_jsonl(path))
    message = str(info.value)
    assert message.startswith(f"{path}: no such file")
    assert "FLANJAX_DATA_DIR is not set" in message
    assert "../shared/data" in message


def test_missing_file_under_env_data_dir_shows_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(readers.DATA_DIR_ENV, str(tmp_path / "corpus"))
    path = tmp_path / "corpus" / "x.tsv"
    with pytest.raises(FileNotFoundError) as info:
        list(read_tsv(path, fieldnames=["a"]))
    assert f"FLANJAX_DATA_DIR={tmp_path / 'corpus'}" in str(info.value)


def test_missing_file_elsewhere_has_no_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(readers.DATA_DIR_ENV, raising=False)
    path = tmp_path / "notes.txt"
    with pytest.raises(FileNotFoundError) as info:
        list(read_labeled_lines(path))
    assert str(info.value) == f"{path}: no such file"


# ------------------------------------------------------------------------ TSV


def test_tsv_keeps_quotes_and_escaped_newlines(tmp_path: Path) -> None:
    content = '"Claim" is it?\\nOptions:\\n- yes\tyes\tBecause "so.\r\nq2\ta2\tr2\n'
    path = write(tmp_path / "cot.tsv", content)
    records = list(read_tsv(path, fieldnames=("question", "answer", "rationale")))
    assert records == [
        {
            "question": '"Claim" is it?\\nOptions:\\n- yes',
            "answer": "yes",
            "rationale": 'Because "so.',
        },
        {"question": "q2", "answer": "a2", "rationale": "r2"},
    ]


def test_tsv_wrong_field_count(tmp_path: Path) -> None:
    path = write(tmp_path / "cot.tsv", "q\ta\tr\nq\ta\tr\nq\ta\n")
    message = error_of(read_tsv, path, fieldnames=("q", "a", "r"))
    assert message == f"{path}:3: expected 3 tab-separated fields, got 2"


def test_tsv_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "cot.tsv", "q\ta\tr\textra\n")
    message = error_of(read_tsv, path, fieldnames=("q", "a", "r"))
    assert message == f"{path}:1: expected 3 tab-separated fields, got 4"


def test_tsv_needs_distinct_fieldnames(tmp_path: Path) -> None:
    path = write(tmp_path / "cot.tsv", "q\ta\n")
    with pytest.raises(ValueError, match="distinct"):
        list(read_tsv(path, fieldnames=("q", "q")))


# ------------------------------------------------------------------------ CSV


def test_csv_header_quoting_and_multiline_fields(tmp_path: Path) -> None:
    content = 'mr,ref\r\n"name[A], area[x]","It is, ""A""."\r\n\r\nname[B],"two\nlines"\n'
    path = write(tmp_path / "dev.csv", content)
    assert list(read_csv(path)) == [
        {"mr": "name[A], area[x]", "ref": 'It is, "A".'},
        {"mr": "name[B]", "ref": "two\nlines"},
    ]


def test_csv_error_line_counts_multiline_records(tmp_path: Path) -> None:
    content = 'a,b,c\n1,"x\ny",3\n4,5\n'
    path = write(tmp_path / "data.csv", content)
    assert error_of(read_csv, path) == f"{path}:4: expected 3 comma-separated fields, got 2"


def test_csv_fieldnames_replace_header(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'Class Index,Title,Description\n3,T,"D, d"\n')
    records = list(read_csv(path, fieldnames=["label", "title", "description"]))
    assert records == [{"label": "3", "title": "T", "description": "D, d"}]


def test_csv_fieldnames_must_match_header_width(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,b,c\n1,2,3\n")
    message = error_of(read_csv, path, fieldnames=["x", "y"])
    assert message.startswith(f"{path}:1: header has 3 fields, expected 2")


def test_csv_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "1,2\n3,4\n")
    records = list(read_csv(path, has_header=False, fieldnames=["x", "y"]))
    assert records == [{"x": "1", "y": "2"}, {"x": "3", "y": "4"}]
    with pytest.raises(ValueError, match="fieldnames are required"):
        list(read_csv(path, has_header=False))


def test_csv_unterminated_quote(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'a,b\n1,2\n3,"open\n')
    message = error_of(read_csv, path)
    assert message.startswith(f"{path}:3: invalid CSV (")


def test_csv_duplicate_header_names(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "a,a\n1,2\n")
    assert error_of(read_csv, path).startswith(f"{path}:1: header names must be")


def test_csv_header_only_has_no_records(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "mr,ref\n")
    assert error_of(read_csv, path) == f"{path}: no records"


# -------------------------------------------------------------- labeled lines


def test_labeled_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "1 a good film .\nDESC:manner How did it go ?")
    assert list(read_labeled_lines(path)) == [
        {"label": "1", "text": "a good film ."},
        {"label": "DESC:manner", "text": "How did it go ?"},
    ]


def test_labeled_lines_without_space(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "1 fine .\n0\n")
    message = error_of(read_labeled_lines, path)
    assert message == f"{path}:2: expected 'LABEL text' separated by a space, got no space"


def test_labeled_lines_empty_text(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "1   \n")
    assert error_of(read_labeled_lines, path) == f"{path}:1: empty text after label '1'"


def test_labeled_lines_empty_label(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "1 ok\n0 ok\n a film\n")
    assert error_of(read_labeled_lines, path).startswith(f"{path}:3: empty label")


def test_numbered_variant_gives_start_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "dev.csv", 'a,b\n1,"x\ny"\n\n2,z\n')
    lines = [line for line, _ in readers.numbered_csv(path)]
    assert lines == [2, 5]
