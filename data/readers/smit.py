"""S-MiT (Spoken Moments in Time): <split>.csv with video_id,video_path,caption (video_path
relative to root).
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Iterator

from data import rejects as rj
from data.readers.parse import PathLike, csv_rows, file_ok, source_name, text_field
from data.rejects import Rejects

SMIT_COLUMNS = ("video_id", "video_path", "caption")


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class SmitClip:
  """One Spoken-Moments-in-Time-style clip with its (transcribed, spoken) caption."""
  video_id: str
  path: pathlib.Path
  caption: str


# ----------------------------------------------------------------------------------------------
# Readers.


def read_smit(root: PathLike, split: str, *, rejects: Rejects, check_files: bool = True
              ) -> Iterator[SmitClip]:
  """Clips of <root>/<split>.csv (video_id,video_path,caption; video_path relative to root)."""
  root = pathlib.Path(root)
  path = root / f"{split}.csv"
  source = source_name(root, path)
  for line, row in csv_rows(path, source, SMIT_COLUMNS, rejects):
    item = f"line {line}"
    try:
      video_id = text_field(row["video_id"], "video_id")
      media = root / text_field(row["video_path"], "video_path")
      caption = text_field(row["caption"], "caption")
    except ValueError as e:
      rejects.add(source, item, rj.MALFORMED_ROW, str(e))
      continue
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield SmitClip(video_id=video_id, path=media, caption=caption)
