"""Kinetics: <split>.csv with label,youtube_id,time_start,time_end,split; clips at
<root>/<split>/<label, spaces as _>/<youtube_id>_<start:06d>_<end:06d>.mp4.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Iterator

from data import rejects as rj
from data.readers.parse import PathLike, csv_rows, file_ok, source_name, text_field
from data.rejects import Rejects

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class KineticsClip:
  """One Kinetics clip with its action label."""
  label: str
  youtube_id: str
  time_start: int
  time_end: int
  split: str
  path: pathlib.Path

  @property
  def clip_id(self) -> str:
    return f"{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}"


# ----------------------------------------------------------------------------------------------
# Readers.


def kinetics_path(root: PathLike, split: str, label: str, youtube_id: str, time_start: int,
                  time_end: int) -> pathlib.Path:
  """<root>/<split>/<label with spaces as _>/<youtube_id>_<start:06d>_<end:06d>.mp4."""
  return (pathlib.Path(root) / split / label.replace(" ", "_")
          / f"{youtube_id}_{time_start:06d}_{time_end:06d}.mp4")


def read_kinetics(root: PathLike, split: str, *, rejects: Rejects, check_files: bool = True
                  ) -> Iterator[KineticsClip]:
  """Clips of <root>/<split>.csv (label,youtube_id,time_start,time_end,split)."""
  root = pathlib.Path(root)
  path = root / f"{split}.csv"
  source = source_name(root, path)
  for line, row in csv_rows(path, source, KINETICS_COLUMNS, rejects):
    item = f"line {line}"
    try:
      label = text_field(row["label"], "label")
      youtube_id = text_field(row["youtube_id"], "youtube_id")
      start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except ValueError as e:
      rejects.add(source, item, rj.MALFORMED_ROW, str(e))
      continue
    media = kinetics_path(root, split, label, youtube_id, start, end)
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield KineticsClip(label=label, youtube_id=youtube_id, time_start=start, time_end=end,
                       split=row["split"].strip() or split, path=media)
