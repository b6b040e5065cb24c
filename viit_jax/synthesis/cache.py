"""Persistent reply cache: append-only JSONL keyed by the hash of the full request.

A restart reads the file back, so a prompt whose reply was received is never sent again. Each
entry is written and flushed as soon as its reply arrives (from the worker thread), so even a
SIGKILL loses at most the replies in flight. A torn last line (killed mid-write) is ignored.

Line format: {"key": sha256 hex, "prompt_id": str, "text": str}
"""
from __future__ import annotations

import json
import pathlib
import threading


class ReplyCache:
  """Thread-safe map key -> reply text, persisted as JSONL at `path`."""

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._lock = threading.Lock()
    self._entries: dict[str, str] = {}
    self.torn_lines = 0
    if self.path.exists():
      with self.path.open("rb") as f:
        data = f.read()
      for raw in data.split(b"\n"):
        if not raw.strip():
          continue
        try:
          entry = json.loads(raw)
          self._entries[entry["key"]] = entry["text"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
          self.torn_lines += 1
      if data and not data.endswith(b"\n"):
        with self.path.open("ab") as f:   # end the torn line so the next entry starts clean
          f.write(b"\n")
    self._file = self.path.open("a", encoding="utf-8")

  def __len__(self) -> int:
    with self._lock:
      return len(self._entries)

  def __contains__(self, key: str) -> bool:
    with self._lock:
      return key in self._entries

  def get(self, key: str) -> str | None:
    with self._lock:
      return self._entries.get(key)

  def put(self, key: str, prompt_id: str, text: str) -> None:
    line = json.dumps({"key": key, "prompt_id": prompt_id, "text": text}, ensure_ascii=False)
    with self._lock:
      if key in self._entries:
        return
      self._entries[key] = text
      self._file.write(line + "\n")
      self._file.flush()   # into the kernel: survives SIGKILL (not a power cut; then re-sent)

  def close(self) -> None:
    with self._lock:
      self._file.close()

