"""Persistent reply cache: JSONL keyed by the hash of the full request, on a local disk or an
object store (through viit_jax.paths).

A restart reads the cache back, so a prompt whose reply was received (and kept, see below) is
never sent again. Where the cache lives decides how replies are kept:

* Local path: one append-only file. Each entry is written and flushed as soon as its reply arrives
  (from the worker thread), so even a SIGKILL loses at most the replies in flight. A torn last
  line (killed mid-write) is ignored.
* Object store (`gs://...`): an object cannot be appended to. This run's replies go to a local
  staging file (appended and flushed per reply, as above) and are published as one object per
  run next to the cache path, `replies-<UTC stamp>-<host>-<pid>.jsonl`, rewritten whole (one
  atomic upload) by `sync()`. synthesize calls `sync()` after each finished work unit and at the
  end, so a SIGKILL loses at most the replies of the unit in progress, which are asked again.

Loading reads the cache file (if any) and every `replies-*.jsonl` segment in its directory, local
or remote alike (a cache directory copied between a disk and a bucket keeps working).

Line format: {"key": sha256 hex, "prompt_id": str, "text": str}
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import tempfile
import threading

from viit_jax import paths

SEGMENT_GLOB = "replies-*.jsonl"
_COPY_CHUNK = 1 << 20


class ReplyCache:
  """Thread-safe map key -> reply text, persisted as JSONL at `path` (see the module docstring)."""

  def __init__(self, path: paths.PathLike):
    self.path = paths.path(path)
    self.remote = paths.is_remote(self.path)
    self._lock = threading.Lock()
    self._sync_lock = threading.Lock()
    self._entries: dict[str, str] = {}
    self.torn_lines = 0
    sources = [self.path] if self.path.exists() else []
    sources += sorted((p for p in self.path.parent.glob(SEGMENT_GLOB) if p != self.path),
                      key=os.fspath)
    for source in sources:
      self._load(source.read_bytes())
    self._staged = self._published = 0  # Bytes of this run's segment: written, uploaded.
    if self.remote:
      stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
      self.segment: paths.Path | None = (
          self.path.parent / f"replies-{stamp}-{socket.gethostname()}-{os.getpid()}.jsonl")
      fd, staging = tempfile.mkstemp(prefix="viit-replies-", suffix=".jsonl")
      os.close(fd)
      self._file_path = pathlib.Path(staging)
    else:
      self.segment = None
      self._file_path = pathlib.Path(os.fspath(self.path))
      self._file_path.parent.mkdir(parents=True, exist_ok=True)
      if self._file_path.exists() and not _ends_clean(self._file_path):
        with self._file_path.open("ab") as f:  # End the torn line so the next entry starts clean.
          f.write(b"\n")
    self._file = self._file_path.open("ab")

  def _load(self, data: bytes) -> None:
    for raw in data.split(b"\n"):
      if not raw.strip():
        continue
      try:
        entry = json.loads(raw)
        self._entries[entry["key"]] = entry["text"]
      except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        self.torn_lines += 1

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
    line = (json.dumps({"key": key, "prompt_id": prompt_id, "text": text}, ensure_ascii=False)
            + "\n").encode("utf-8")
    with self._lock:
      if key in self._entries:
        return
      self._entries[key] = text
      self._file.write(line)
      self._file.flush()  # Into the kernel: survives SIGKILL (not a power cut; then re-sent).
      self._staged += len(line)

  def sync(self) -> None:
    """Publishes this run's replies (remote cache: rewrites its segment whole, when it has new
    replies); a no-op for a local cache, whose file is flushed on every put."""
    if self.segment is None:
      return
    with self._sync_lock:
      with self._lock:
        size = self._staged
      if size == self._published:
        return
      # Whole lines only: put() writes and flushes a line before counting its bytes.
      with self._file_path.open("rb") as src, paths.atomic_writer(self.segment) as dst:
        left = size
        while left:
          chunk = src.read(min(left, _COPY_CHUNK))
          if not chunk:
            raise RuntimeError(f"reply cache staging file {self._file_path} shrank")
          dst.write(chunk)
          left -= len(chunk)
      self._published = size

  def close(self) -> None:
    """Syncs (remote), then closes the file; a remote cache's staging file is removed."""
    self.sync()
    with self._lock:
      self._file.close()
    if self.segment is not None:
      self._file_path.unlink(missing_ok=True)


def _ends_clean(path: pathlib.Path) -> bool:
  """True when the file is empty or ends with a newline."""
  with path.open("rb") as f:
    f.seek(0, os.SEEK_END)
    if f.tell() == 0:
      return True
    f.seek(-1, os.SEEK_END)
    return f.read(1) == b"\n"
