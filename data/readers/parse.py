"""Low-level parsing shared by the readers: CSV and JSONL streaming with per-row rejection, JSON
loading, UTF-8 and field checks, media-file checks, and the formats' duration and timestamp strings.

Each reader documents what it rejects; these helpers reject (and count in `Rejects`) only what they
can judge on their own: csv/JSON syntax, field counts and invalid UTF-8 (csv_rows, jsonl_objects),
and missing media files (file_ok).
"""
from __future__ import annotations

import csv
import json
import os
import pathlib
import re
from typing import Any, Iterator, Mapping, Sequence

from data import rejects as rj
from data.rejects import Rejects

PathLike = str | os.PathLike[str]


def _valid_utf8(text: str) -> bool:
  """False when `text` holds bytes that were not UTF-8 (decoded with surrogateescape)."""
  try:
    text.encode("utf-8")
    return True
  except UnicodeEncodeError:
    return False


def _read_text(path: pathlib.Path) -> str:
  """Whole file as text; invalid UTF-8 bytes survive as lone surrogates, caught per field."""
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {path}")
  return path.read_bytes().decode("utf-8-sig", errors="surrogateescape")


def source_name(root: pathlib.Path, path: pathlib.Path) -> str:
  try:
    return f"{root.name}/{path.relative_to(root)}"
  except ValueError:
    return str(path)


def csv_rows(path: pathlib.Path, source: str, columns: Sequence[str], rejects: Rejects,
             ) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields (line number, row dict) of well-formed rows; rejects the others. Streams the file
  (WebVid CSVs are gigabytes).

  Rejected: csv syntax errors and rows whose field count differs from the header
  (malformed_row), rows with invalid UTF-8 in any field (invalid_utf8). Blank lines are skipped.
  Raises FileNotFoundError for a missing file, ValueError when the header lacks one of `columns`.
  """
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {path}")
  # Invalid UTF-8 bytes survive decoding as lone surrogates and are caught per row.
  with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
    reader = csv.reader(f)
    try:
      header = next(reader)
    except StopIteration:
      raise ValueError(f"{path}: empty CSV, expected columns {list(columns)}") from None
    missing = [c for c in columns if c not in header]
    if missing:
      raise ValueError(f"{path}: CSV header {header} lacks columns {missing}")
    while True:
      try:
        row = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        rejects.add(source, f"line {reader.line_num}", rj.MALFORMED_ROW, f"csv error: {e}")
        continue
      line = f"line {reader.line_num}"
      if not row or (len(row) == 1 and not row[0].strip()):
        continue
      if len(row) != len(header):
        rejects.add(source, line, rj.MALFORMED_ROW,
                    f"{len(row)} fields, header has {len(header)}: {row!r}"[:500])
        continue
      bad = [h for h, v in zip(header, row) if not _valid_utf8(v)]
      if bad:
        rejects.add(source, line, rj.INVALID_UTF8, f"fields {bad} are not valid UTF-8")
        continue
      yield reader.line_num, dict(zip(header, row))


def jsonl_objects(path: pathlib.Path, source: str, rejects: Rejects,
                  ) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields (line number, object) of JSON-object lines; rejects bad UTF-8 and bad JSON lines."""
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {path}")
  with path.open("rb") as f:
    for n, raw in enumerate(f, start=1):
      if not raw.strip():
        continue
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        rejects.add(source, f"line {n}", rj.INVALID_UTF8, str(e))
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        rejects.add(source, f"line {n}", rj.MALFORMED_ROW, f"bad JSON: {e}")
        continue
      if not isinstance(obj, dict):
        rejects.add(source, f"line {n}", rj.MALFORMED_ROW, "line is not a JSON object")
        continue
      yield n, obj


def load_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(_read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON: {e}") from e


def json_list_entries(path: pathlib.Path, source: str, rejects: Rejects, item_prefix: str = ""
                      ) -> Iterator[tuple[str, Any]]:
  """(item name "[i]", entry) of a JSON file holding a list; entries with invalid UTF-8 strings
  are rejected (invalid_utf8); a file that is not a list is an error."""
  data = load_json(path)
  if not isinstance(data, list):
    raise ValueError(f"{path}: expected a JSON list")
  for i, entry in enumerate(data):
    item = f"{item_prefix}[{i}]"
    if not strings_ok(entry):
      rejects.add(source, item, rj.INVALID_UTF8, "a string field is not valid UTF-8")
      continue
    yield item, entry


def strings_ok(obj: Any) -> bool:
  """True when every string inside a JSON value is valid UTF-8."""
  if isinstance(obj, str):
    return _valid_utf8(obj)
  if isinstance(obj, Mapping):
    return all(strings_ok(k) and strings_ok(v) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return all(strings_ok(v) for v in obj)
  return True


def file_ok(root: pathlib.Path, path: pathlib.Path, source: str, item: str, rejects: Rejects,
            check_files: bool) -> bool:
  """Whether a row's media file may be used: it must lie inside the data root (a row naming an
  absolute path or climbing out with '..' is rejected as path_outside_root; checked on the names,
  so folders symlinked into the root still work) and, with `check_files`, exist."""
  root_name = os.path.normpath(os.path.abspath(root))
  if os.path.commonpath([root_name, os.path.normpath(os.path.abspath(path))]) != root_name:
    rejects.add(source, item, rj.PATH_OUTSIDE_ROOT, f"media file outside the data root {root}: "
                f"{path}")
    return False
  if check_files and not path.is_file():
    rejects.add(source, item, rj.MISSING_FILE, f"media file not found: {path}")
    return False
  return True


def text_field(value: Any, name: str) -> str:
  if not isinstance(value, str):
    raise ValueError(f"{name} is {type(value).__name__}, expected a string")
  value = value.strip()
  if not value:
    raise ValueError(f"{name} is empty")
  return value


_ISO_DURATION = re.compile(
    r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_iso8601_duration(text: str) -> float:
  """'PT00H00M11S' (WebVid) -> 11.0 seconds. Raises ValueError."""
  m = _ISO_DURATION.match(text.strip())
  if not m or not any(m.groups()):
    raise ValueError(f"not an ISO-8601 duration: {text!r}")
  days, hours, minutes, seconds = m.groups()
  return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
          + float(seconds or 0))


_HMS = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$")


def parse_timestamp(text: str) -> float:
  """'HH:MM:SS.mmm' (InternVid) -> seconds. Raises ValueError."""
  m = _HMS.match(text.strip())
  if not m:
    raise ValueError(f"not an HH:MM:SS.mmm timestamp: {text!r}")
  return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
