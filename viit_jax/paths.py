"""One path layer for every run-directory file: local paths and object stores (`gs://`) alike.

Every entry point writes its workdir through this module (checkpoints go through orbax, which takes
the same paths): `path()` never turns `gs://b/x` into a local path, and writes are whole-file and
atomic on both kinds of store:
- local: a temporary file next to the target, fsync, rename;
- object store: one object upload, which the store makes visible all at once (GCS has no rename;
  an object is either the old or the new one, never a torn mix).
Readers of append-only files (metrics.jsonl) tolerate a torn last line.

`gs://` goes through etils.epath's fsspec back-end (gcsfs), not TensorFlow's GCS client: gcsfs
honours `STORAGE_EMULATOR_HOST` (the tests' local GCS emulator), TensorFlow's client has no endpoint
setting (its GCS file system reads only the GCS_* tuning variables and always calls
www.googleapis.com). orbax's arrays go through tensorstore, which reads `TENSORSTORE_GCS_HTTP_URL`.
Files that a library must open by local name (a SentencePiece model for seqio, a `.npz`) are
copied once to a local cache with `local_copy`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import socket
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

os.environ.setdefault("EPATH_USE_TF", "false")  # Before the first gs:// path is made (cached).

import fsspec  # pylint: disable=g-import-not-at-top,wrong-import-position
from etils import epath  # pylint: disable=g-import-not-at-top,wrong-import-position

# No directory-listing cache: other processes (hosts) write into the same run directory, and a
# cached listing would hide their files (e.g. process 0 waiting for the others' work units).
for _protocol in ("gs", "gcs"):
  fsspec.config.conf.setdefault(_protocol, {})["use_listings_cache"] = False

Path = epath.Path
PathLike = str | os.PathLike[str]
CACHE_ENV = "VIIT_REMOTE_CACHE"  # Where local_copy keeps its copies (default: the temp dir).


def is_remote(p: PathLike) -> bool:
  """True for URLs of an object store (`gs://`, `s3://`, ...), False for local paths."""
  return "://" in os.fspath(p)


def path(p: PathLike) -> Path:
  """`p` as a path of this layer: URLs as they are, local paths made absolute."""
  s = os.fspath(p)
  return Path(s) if is_remote(s) else Path(os.path.abspath(s))


def name(p: PathLike) -> str:
  """The string form of `path(p)` (for logs, orbax and file records)."""
  return os.fspath(path(p))


@contextlib.contextmanager
def atomic_writer(p: PathLike) -> Iterator[BinaryIO]:
  """A binary file that becomes `p` whole when the block ends without an error (see the module
  docstring); creates the parent directory. For outputs too large to hold in memory."""
  target = path(p)
  if is_remote(target):
    f = target.open("wb")  # The object appears when the upload completes, on close.
    try:
      yield f
    except BaseException:
      if hasattr(f, "discard"):  # fsspec: abandon the upload, no object appears.
        f.discard()
      raise
    f.close()
    return
  target.parent.mkdir(parents=True, exist_ok=True)
  local = pathlib.Path(os.fspath(target))
  tmp = local.with_name(f".{local.name}.tmp-{socket.gethostname()}-{os.getpid()}")
  try:
    with open(tmp, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, local)
  finally:
    tmp.unlink(missing_ok=True)


def write_atomic(p: PathLike, data: bytes) -> None:
  """Writes `data` to `p` whole (see `atomic_writer`)."""
  with atomic_writer(p) as f:
    f.write(data)


def write_text(p: PathLike, text: str) -> None:
  write_atomic(p, text.encode("utf-8"))


def write_json(p: PathLike, obj: Any) -> None:
  write_atomic(p, (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
                   ).encode("utf-8"))


def read_json(p: PathLike) -> Any:
  return json.loads(path(p).read_text())


def read_jsonl(p: PathLike) -> list[dict[str, Any]]:
  """The records of a JSON-lines file; a torn last line (a write cut short) is dropped."""
  lines = path(p).read_text().splitlines()
  out = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        break  # Torn tail.
      raise
  return out


def jsonl_bytes(rows: Iterable[Any]) -> bytes:
  """JSON lines (keys sorted, UTF-8 as is)."""
  return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()


def local_copy(p: PathLike) -> str:
  """A local file name with the contents of `p`: `p` itself when local, else a cached copy
  (keyed by the URL; fetched again when the remote size changed)."""
  s = os.fspath(p)
  if not is_remote(s):
    return s
  remote = path(s)
  cache = pathlib.Path(os.environ.get(CACHE_ENV) or tempfile.gettempdir()) / "viit_remote"
  cache.mkdir(parents=True, exist_ok=True)
  key = hashlib.sha256(s.encode()).hexdigest()[:16]
  local = cache / f"{key}-{remote.name}"
  size = remote.stat().length
  if not local.is_file() or local.stat().st_size != size:
    write_atomic(local, remote.read_bytes())
  return str(local)
