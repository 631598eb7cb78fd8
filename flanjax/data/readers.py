"""Streaming readers for local data files, with errors that point at the line.

Every reader is a generator: it opens the file lazily, yields one ``dict`` per
record and holds at most one record (one CSV record, which may span lines) in
memory. Records hold the file's values exactly as read (strings, or JSON
values); readers add nothing else and convert nothing.

Errors:

* a malformed line raises :class:`DataFileError` whose message starts with
  ``PATH:LINE:`` (LINE 1-based), then what is wrong, e.g.
  ``/x/train.jsonl:17: invalid JSON (Expecting ',' delimiter: ...)``;
* a file without any record raises ``DataFileError("PATH: no records")``;
* a missing file raises :class:`FileNotFoundError` naming the path, with a hint
  on the ``FLANJAX_DATA_DIR`` setting when the path looks like a data file.

Blank lines (whitespace only) are skipped in every format: many files end
with one, and they hold no record.

The ``numbered_*`` variants yield ``(line, record)`` pairs, where ``line`` is
the 1-based line on which the record starts; the catalog uses them to name
the line of a record that fails to normalize.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_DIR_ENV",
    "DataFileError",
    "numbered_csv",
    "numbered_jsonl",
    "numbered_labeled_lines",
    "numbered_tsv",
    "read_csv",
    "read_jsonl",
    "read_labeled_lines",
    "read_tsv",
]

DATA_DIR_ENV = "FLANJAX_DATA_DIR"

PathLike = str | os.PathLike[str]
Numbered = Iterator[tuple[int, dict[str, Any]]]


class DataFileError(ValueError):
    """A data file that cannot be read as its format says: names file and line."""


def _data_dir_hint(path: Path) -> str:
    """The hint on FLANJAX_DATA_DIR for a missing file that looks like data."""
    env = os.environ.get(DATA_DIR_ENV)
    resolved = path.resolve()
    under_env = bool(env) and resolved.is_relative_to(Path(env).resolve())
    if not under_env and "data" not in path.parts and "data" not in resolved.parts:
        return ""
    setting = f"{DATA_DIR_ENV}={env}" if env else f"{DATA_DIR_ENV} is not set"
    return (
        f" (data files are read from the data directory: {setting}; set "
        f"{DATA_DIR_ENV} to the folder that holds the data, by default "
        "../shared/data beside the repository)"
    )


def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, text)`` with line endings kept, decoding UTF-8."""
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file{_data_dir_hint(p)}") from None
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFileError(f"{p}:{number}: invalid UTF-8 ({exc})") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text


def _chomp(text: str) -> str:
    """The line without its ending (``\\n`` or ``\\r\\n``)."""
    return text.removesuffix("\n").removesuffix("\r")


def _require_records(path: PathLike, count: int) -> None:
    if count == 0:
        raise DataFileError(f"{path}: no records")


def numbered_jsonl(path: PathLike) -> Numbered:
    """JSON Lines: one JSON object per line."""
    count = 0
    for number, text in _lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{number}: invalid JSON ({exc})") from None
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise DataFileError(f"{path}:{number}: a JSON object is required, got {kind}")
        count += 1
        yield number, value
    _require_records(path, count)


def numbered_tsv(path: PathLike, *, fieldnames: Sequence[str]) -> Numbered:
    """Tab-separated lines without header and without any quoting.

    Quotes are ordinary characters (FLAN's CoT files hold unbalanced ``"``), and
    a literal backslash-n stays two characters: unescaping is the normalizer's
    business.
    """
    names = _check_fieldnames(fieldnames)
    count = 0
    for number, text in _lines(path):
        line = _chomp(text)
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(names):
            raise DataFileError(
                f"{path}:{number}: expected {len(names)} tab-separated fields, got {len(fields)}"
            )
        count += 1
        yield number, dict(zip(names, fields, strict=True))
    _require_records(path, count)


def numbered_labeled_lines(path: PathLike) -> Numbered:
    """``LABEL<space>text`` lines (SST-2, TREC): ``{"label": ..., "text": ...}``."""
    count = 0
    for number, text in _lines(path):
        line = _chomp(text)
        if not line.strip():
            continue
        label, sep, rest = line.partition(" ")
        if not sep:
            raise DataFileError(
                f"{path}:{number}: expected 'LABEL text' separated by a space, got no space"
            )
        if not label:
            raise DataFileError(f"{path}:{number}: empty label (line starts with a space)")
        if not rest.strip():
            raise DataFileError(f"{path}:{number}: empty text after label {label!r}")
        count += 1
        yield number, {"label": label, "text": rest}
    _require_records(path, count)


def _check_fieldnames(fieldnames: Iterable[str] | None) -> tuple[str, ...]:
    if fieldnames is None:
        raise ValueError("fieldnames are required for a file without header")
    names = tuple(fieldnames)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"fieldnames must be non-empty and distinct, got {names}")
    return names


def numbered_csv(
    path: PathLike,
    *,
    has_header: bool = True,
    fieldnames: Sequence[str] | None = None,
) -> Numbered:
    """Comma-separated values with RFC 4180 quoting (fields may span lines).

    With ``has_header`` the first row is the header; ``fieldnames``, if given,
    then replace its names (the header must have as many fields). Without a
    header, ``fieldnames`` are required. The line of a record is the line on
    which it starts.
    """
    names = None if fieldnames is None else _check_fieldnames(fieldnames)
    if not has_header and names is None:
        raise ValueError(f"{path}: fieldnames are required when has_header=False")
    texts = (text for _, text in _lines(path))
    reader = csv.reader(texts, strict=True)
    count, end, header_pending = 0, 0, has_header
    while True:
        start = end + 1
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise DataFileError(f"{path}:{start}: invalid CSV ({exc})") from None
        end = reader.line_num
        if row is None:
            break
        if not row or not any(cell.strip() for cell in row):
            continue
        if header_pending:
            names, header_pending = _header(path, start, row, names), False
            continue
        assert names is not None
        if len(row) != len(names):
            raise DataFileError(
                f"{path}:{start}: expected {len(names)} comma-separated fields, got {len(row)}"
            )
        count += 1
        yield start, dict(zip(names, row, strict=True))
    _require_records(path, count)


def _header(
    path: PathLike, line: int, row: list[str], names: tuple[str, ...] | None
) -> tuple[str, ...]:
    """Checks a header row; returns the field names to use."""
    if names is not None:
        if len(row) != len(names):
            raise DataFileError(
                f"{path}:{line}: header has {len(row)} fields, expected {len(names)} ({names})"
            )
        return names
    if len(set(row)) != len(row) or not all(row):
        raise DataFileError(f"{path}:{line}: header names must be non-empty and distinct: {row}")
    return tuple(row)


def read_jsonl(path: PathLike) -> Iterator[dict[str, Any]]:
    """Yields each JSON object of a JSON Lines file."""
    for _, record in numbered_jsonl(path):
        yield record


def read_csv(
    path: PathLike, *, has_header: bool = True, fieldnames: Sequence[str] | None = None
) -> Iterator[dict[str, str]]:
    """Yields each CSV record as ``{field: text}``; see :func:`numbered_csv`."""
    for _, record in numbered_csv(path, has_header=has_header, fieldnames=fieldnames):
        yield record


def read_tsv(path: PathLike, *, fieldnames: Sequence[str]) -> Iterator[dict[str, str]]:
    """Yields each line of a headerless TSV file as ``{field: text}``."""
    for _, record in numbered_tsv(path, fieldnames=fieldnames):
        yield record


def read_labeled_lines(path: PathLike) -> Iterator[dict[str, str]]:
    """Yields ``{"label": LABEL, "text": rest}`` for each ``LABEL text`` line."""
    for _, record in numbered_labeled_lines(path):
        yield record
