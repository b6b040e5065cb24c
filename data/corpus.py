"""Unlabeled video corpora for auto-labeling: rows in file order, de-duplicated, cut into work units.

Formats: the demo world's pool and WebVid (CSV: videoid, name, page_dir, ...), InternVid (JSONL with
segments). Well-formed, de-duplicated rows get a global index in file order; units are
`unit_size` consecutive clips, so the unit partition depends on the corpus file only (media files
are checked when a unit decodes them). Bad rows are counted by reason in a `Rejects`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
from collections.abc import Iterable, Iterator

import ml_collections

from data import readers
from data import rejects as rj

CORPUS_FORMATS = ("demo", "webvid", "internvid")
DEFAULT_FILES = {"webvid": "results_2M_train.csv", "internvid": "InternVid-10M-FLT.jsonl"}
DEFAULT_TEMPLATES = {"demo": "{contentUrl}", "webvid": "videos/{page_dir}/{videoid}.mp4",
                     "internvid": "videos/{YoutubeID}.mp4"}


@dataclasses.dataclass(frozen=True)
class Clip:
  """One clip to caption.

  Attributes:
    index: global position in the corpus (after dropping bad and duplicate rows).
    clip_id: the corpus's id (WebVid videoid; InternVid <YoutubeID>_<start_ms>_<end_ms>).
    path: the media file.
    rel_path: the media file relative to the corpus root (what the outputs store).
    segment: (start_s, end_s) to cut from the file, or None for the whole file.
    alt_text: the corpus's own text for the clip.
  """
  index: int
  clip_id: str
  path: pathlib.Path
  rel_path: str
  segment: tuple[float, float] | None
  alt_text: str


@dataclasses.dataclass(frozen=True)
class Corpus:
  """An unlabeled corpus in one of the supported formats (see data/readers/)."""
  format: str
  root: pathlib.Path
  file: str
  path_template: str
  full_videos: bool
  limit: int

  @property
  def source(self) -> str:
    return f"{self.format}/{self.file}"

  def clips(self, rejects: rj.Rejects) -> Iterator[Clip]:
    """Streams the clips in file order; bad rows and repeated ids are counted in `rejects`.

    Media files are not checked here (a missing file is a bad clip of its unit), so the unit
    partition depends on the corpus file only.
    """
    if self.format in ("demo", "webvid"):
      rows = ((c.videoid, c.path, None, c.name) for c in readers.read_webvid(
          self.root, self.file, rejects=rejects, path_template=self.path_template,
          check_files=False))
    else:
      rows = ((c.clip_id, c.path, c.segment, c.caption) for c in readers.read_internvid(
          self.root, self.file, rejects=rejects, path_template=self.path_template,
          full_videos=self.full_videos, check_files=False))
    seen: set[str] = set()
    index = 0
    for clip_id, path, segment, alt_text in rows:
      if self.limit and index >= self.limit:
        return
      if clip_id in seen:
        rejects.add(self.source, clip_id, rj.DUPLICATE_KEY, f"clip id {clip_id!r} seen before")
        continue
      seen.add(clip_id)
      yield Clip(index, clip_id, path, os.path.relpath(path, self.root), segment, alt_text)
      index += 1


def corpus_from_config(c: ml_collections.ConfigDict) -> Corpus:
  """The configured corpus; a clear error for a missing root or file."""
  fmt = c.format
  if fmt not in CORPUS_FORMATS:
    raise ValueError(f"corpus.format must be one of {CORPUS_FORMATS}, got {fmt!r}")
  if fmt == "demo":
    if not c.world_dir:
      raise ValueError("corpus.format=demo needs corpus.world_dir (python -m data.demo_world)")
    root = pathlib.Path(c.world_dir) / "webvid"
    file = c.file or "results_pool.csv"
  else:
    if not c.root:
      raise ValueError(f"corpus.format={fmt} needs corpus.root")
    root = pathlib.Path(c.root)
    file = c.file or DEFAULT_FILES[fmt]
  if not (root / file).is_file():
    raise FileNotFoundError(f"corpus file {root / file} does not exist")
  if c.limit < 0:
    raise ValueError(f"corpus.limit must be >= 0, got {c.limit}")
  return Corpus(fmt, root.resolve(), file, c.path_template or DEFAULT_TEMPLATES[fmt],
                bool(c.internvid_full_videos), int(c.limit))


def units_of(clips: Iterable[Clip], unit_size: int) -> Iterator[tuple[int, list[Clip]]]:
  """(unit index, clips) of consecutive `unit_size` clips."""
  unit: list[Clip] = []
  index = 0
  for clip in clips:
    unit.append(clip)
    if len(unit) == unit_size:
      yield index, unit
      unit, index = [], index + 1
  if unit:
    yield index, unit


@dataclasses.dataclass(frozen=True)
class CorpusScan:
  """Pass 1 over the corpus: counts, a fingerprint of the clip list, and the bad rows."""
  num_clips: int
  num_units: int
  fingerprint: str
  rejects: rj.Rejects


def scan(corpus: Corpus, unit_size: int) -> CorpusScan:
  rejects = rj.Rejects(corpus.source)
  digest = hashlib.sha256()
  n = 0
  for clip in corpus.clips(rejects):
    digest.update(json.dumps([clip.clip_id, clip.rel_path, clip.segment]).encode() + b"\n")
    n += 1
  return CorpusScan(n, math.ceil(n / unit_size), digest.hexdigest(), rejects)
