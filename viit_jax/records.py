"""Bulk-job output files: work units and TFRecords of tf.train.Example (whole-file writes go
through viit_jax.paths, on local disks and object stores alike).

The one place for what instruction synthesis and auto-labeling write. TFRecords are written without
TensorFlow (importing it costs 5-10 s per start, paid again on every restart after a kill); the
formats are small and stable:

  TFRecord:  uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
             (little endian; masked = ((crc >> 15 | crc << 17) + 0xa282ead8) mod 2^32)
  Example:   features (1) -> Features; Features: map<string, Feature> feature (1); Feature:
             bytes_list (1) | float_list (2) | int64_list (3), each a repeated `value` (1).

The tests read the files back with tf.data and tf.io.parse_single_example.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import google_crc32c

from viit_jax import config_lib
from viit_jax import paths


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negative int64
  out = bytearray()
  while True:
    bits = n & 0x7F
    n >>= 7
    if n:
      out.append(bits | 0x80)
    else:
      out.append(bits)
      return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tf_example(features: Mapping[str, Sequence[bytes] | Sequence[float] | Sequence[int]],
               kinds: Mapping[str, str]) -> bytes:
  """A serialized tf.train.Example. kinds[name] is "bytes", "float" or "int64"."""
  entries = []
  for name in sorted(features):
    values, kind = features[name], kinds[name]
    if kind == "bytes":
      inner = b"".join(_len_field(1, v) for v in values)
      feature = _len_field(1, inner)
    elif kind == "float":
      inner = _len_field(1, struct.pack(f"<{len(values)}f", *values)) if len(values) else b""
      feature = _len_field(2, inner)
    elif kind == "int64":
      inner = _len_field(1, b"".join(_varint(int(v)) for v in values)) if len(values) else b""
      feature = _len_field(3, inner)
    else:
      raise ValueError(f"unknown feature kind {kind!r}")
    entries.append(_len_field(1, _len_field(1, name.encode()) + _len_field(2, feature)))
  return _len_field(1, b"".join(entries))


def _masked_crc(data: bytes) -> bytes:
  crc = google_crc32c.value(data)
  return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_bytes(records: Iterable[bytes]) -> bytes:
  """TFRecord framing: length, masked CRC32C of the length, data, masked CRC32C of the data."""
  out = bytearray()
  for r in records:
    length = struct.pack("<Q", len(r))
    out += length + _masked_crc(length) + r + _masked_crc(r)
  return bytes(out)


def bind_settings(out_dir: paths.PathLike, settings: Mapping[str, Any]) -> None:
  """Writes `<out_dir>/settings.json` on a version's first run; later runs (resumes, other
  processes) must bring the same settings, else a ValueError names what changed."""
  path = paths.path(out_dir) / "settings.json"
  settings = json.loads(json.dumps(settings))  # As the file holds them (tuples -> lists).
  if path.exists():
    changed = config_lib.diff(paths.read_json(path), settings)
    if changed:
      raise ValueError(
          f"{out_dir} was written with other settings ({'; '.join(changed[:8])}); use another "
          "version (config.version) for a new dataset, or restore the settings to resume it")
    return
  paths.write_json(path, settings)


def read_manifest(dataset_dir: paths.PathLike, entry: str) -> dict[str, Any]:
  """The manifest of a finished version of bulk job `entry` (autolabel, synthesize); a clear
  error while a work unit is still missing (the manifest is written after the last one)."""
  path = paths.path(dataset_dir) / "manifest.json"
  if not path.exists():
    raise FileNotFoundError(
        f"{path} does not exist: {dataset_dir} is not a finished {entry} output (run python -m "
        f"viit_jax.{entry} with the same config until every work unit is written)")
  return paths.read_json(path)


class UnitFiles:
  """The work units of a bulk job's output version: `<out_dir>/units/unit-NNNNN.<suffix>`.

  A unit is its data files (`tfrecord`, `jsonl`, `rejects.jsonl`), each written atomically, then
  its `meta.json`, written last: a unit with a meta file is finished, so a restart skips it.
  """

  def __init__(self, out_dir: paths.PathLike):
    self.out_dir = paths.path(out_dir)
    self.units_dir = self.out_dir / "units"
    self.units_dir.mkdir(parents=True, exist_ok=True)

  def path(self, index: int, suffix: str) -> paths.Path:
    return self.units_dir / f"unit-{index:05d}.{suffix}"

  def meta(self, index: int) -> dict[str, Any] | None:
    """The unit's meta record, or None while the unit is unfinished."""
    p = self.path(index, "meta.json")
    return paths.read_json(p) if p.exists() else None

  def commit(self, index: int, tfrecord: bytes, rows: Iterable[Mapping[str, Any]],
             rejects: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
    """Writes one unit: data files first, the meta file last (the unit's commit)."""
    paths.write_atomic(self.path(index, "tfrecord"), tfrecord)
    paths.write_atomic(self.path(index, "jsonl"), paths.jsonl_bytes(rows))
    paths.write_atomic(self.path(index, "rejects.jsonl"), paths.jsonl_bytes(rejects))
    paths.write_json(self.path(index, "meta.json"), dict(meta))

  def rows(self, index: int) -> list[dict[str, Any]]:
    return paths.read_jsonl(self.path(index, "jsonl"))

  def rejects(self, index: int) -> list[dict[str, Any]]:
    return paths.read_jsonl(self.path(index, "rejects.jsonl"))
