"""Counting and recording rejected inputs (bad rows, bad videos).

Bad input never vanishes: every reader and every video source takes a `Rejects` object, and each
skipped item is counted by reason and written as one JSON line a user can read:

    {"source": "msrvtt/MSRVTT_data.json", "item": "sentences[17]", "reason": "invalid_utf8",
     "detail": "caption is not valid UTF-8: ..."}

`item` names where the bad input is (a CSV/JSONL line number, a JSON array index, a clip path).
The same (source, item, reason) is counted once, however often a data set is iterated (a
training source is read once per epoch), so counts are per data set, not per pass.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import threading
from typing import Any

# Reasons used by the readers and the video decoder. Free text is allowed, these are the common ones.
MALFORMED_ROW = "malformed_row"  # wrong number of fields, bad JSON line, missing key, unparseable value
INVALID_UTF8 = "invalid_utf8"  # a text field that is not valid UTF-8
MISSING_FILE = "missing_file"  # a row names a media file that does not exist
PATH_OUTSIDE_ROOT = "path_outside_root"  # a row names a file outside its data root (absolute, ..)
UNKNOWN_VIDEO = "unknown_video"  # a row refers to a video id the data set does not define
EMPTY_FILE = "empty_file"  # zero-byte media file
CORRUPT = "corrupt"  # media file that cannot be opened or decoded
NO_VIDEO_STREAM = "no_video_stream"  # container without a video stream
UNSUPPORTED_CODEC = "unsupported_codec"  # the video codec has no decoder in this FFmpeg build
TOO_SHORT = "too_short"  # fewer decodable frames than asked for
EMPTY_SEGMENT = "empty_segment"  # the requested time segment holds no frame
TOO_LONG = "too_long"  # a video longer than the decoder's duration cap (data.video.MAX_DURATION_S)
TOO_LARGE = "too_large"  # video frames with more pixels than the cap (data.video.MAX_PIXELS)
DECODE_TIMEOUT = "decode_timeout"  # one clip took longer than its wall-time limit to decode
DUPLICATE_KEY = "duplicate_key"  # a second row with the key of an earlier one


def _text(value: object) -> str:
  """str(value) safe to write as UTF-8: undecodable input bytes (lone surrogates) are written
  as backslash escapes instead of failing the write."""
  return str(value).encode("utf-8", errors="backslashreplace").decode("utf-8")


@dataclasses.dataclass(frozen=True)
class RejectRecord:
  """One rejected item."""
  source: str
  item: str
  reason: str
  detail: str

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


class Rejects:
  """Per-reason counts and records of skipped inputs; thread-safe (tf.data runs generators in threads).

  Args:
    name: what this object collects for (a task or data set name), used in messages.
    path: optional JSONL file; each new reject is appended as one line (the file is created on the
      first reject; the parent directory is created when needed).
  """

  def __init__(self, name: str, path: str | pathlib.Path | None = None):
    self.name = name
    self.path = pathlib.Path(path) if path is not None else None
    self._lock = threading.Lock()
    self._seen: set[tuple[str, str, str]] = set()
    self._records: list[RejectRecord] = []
    self._counts: collections.Counter[str] = collections.Counter()

  def add(self, source: str, item: str | int, reason: str, detail: str = "") -> bool:
    """Records one rejected item. Returns False when (source, item, reason) was already recorded."""
    record = RejectRecord(source=_text(source), item=_text(item), reason=_text(reason),
                          detail=_text(detail))
    key = (record.source, record.item, record.reason)
    with self._lock:
      if key in self._seen:
        return False
      self._seen.add(key)
      self._records.append(record)
      self._counts[reason] += 1
      if self.path is not None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
          f.write(record.to_json() + "\n")
    return True

  @property
  def counts(self) -> dict[str, int]:
    """Reason -> number of distinct rejected items."""
    with self._lock:
      return dict(self._counts)

  @property
  def records(self) -> list[RejectRecord]:
    with self._lock:
      return list(self._records)

  @property
  def total(self) -> int:
    with self._lock:
      return sum(self._counts.values())

  def summary(self) -> dict[str, Any]:
    return {"name": self.name, "total": self.total, "counts": self.counts,
            "path": str(self.path) if self.path else None}

  def __repr__(self) -> str:
    return f"Rejects({self.name!r}, total={self.total}, counts={self.counts})"
