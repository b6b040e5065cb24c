"""VATEX (Wang et al. 2019), public layout: <root>/<annotation file> = [{"videoID":
"<youtube id>_<start 6 digits>_<end 6 digits>", "enCap": [10 English captions], "chCap": [...]}],
e.g. vatex_training_v1.0.json, vatex_validation_v1.0.json, vatex_public_test_english_v1.1.json.
Videos (the 10-second clips) at <root>/<video_dir>/<videoID>.mp4.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Iterator

from data import rejects as rj
from data.readers.parse import PathLike, file_ok, json_list_entries, source_name, text_field
from data.rejects import Rejects

VATEX_FILES = {"train": "vatex_training_v1.0.json", "val": "vatex_validation_v1.0.json",
               "test": "vatex_public_test_english_v1.1.json"}
_VIDEO_ID = re.compile(r"^(?P<yt>.{11})_(?P<start>\d{6})_(?P<end>\d{6})$")


@dataclasses.dataclass(frozen=True)
class VatexClip:
  """One VATEX clip with its English captions; `segment` is its span in the YouTube video."""
  video_id: str
  youtube_id: str
  segment: tuple[float, float]
  captions: tuple[str, ...]
  path: pathlib.Path


def vatex_splits(root: PathLike) -> list[str]:
  """The VATEX splits whose annotation file exists under `root`."""
  return [s for s, f in VATEX_FILES.items() if (pathlib.Path(root) / f).is_file()]


def read_vatex(root: PathLike, split: str, *, rejects: Rejects, video_dir: str = "videos",
               check_files: bool = True) -> Iterator[VatexClip]:
  """Clips of one VATEX split (train, val, test) with their English captions, in file order.

  Rejects: entries with missing keys, a videoID not of the form <11-char id>_<start>_<end>, or no
  English caption (malformed_row), invalid UTF-8 (invalid_utf8), missing clips (missing_file).
  """
  root = pathlib.Path(root)
  path = root / VATEX_FILES[split]
  source = source_name(root, path)
  for item, e in json_list_entries(path, source, rejects):
    try:
      vid = text_field(e["videoID"], "videoID")
      m = _VIDEO_ID.match(vid)
      if not m:
        raise ValueError(f"videoID {vid!r} is not <youtube id>_<start>_<end>")
      captions = tuple(c.strip() for c in e["enCap"] if isinstance(c, str) and c.strip())
      if not captions:
        raise ValueError("no English caption")
    except (KeyError, TypeError, ValueError) as err:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(err).__name__}: {err}")
      continue
    media = root / video_dir / f"{vid}.mp4"
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield VatexClip(video_id=vid, youtube_id=m["yt"],
                    segment=(float(m["start"]), float(m["end"])), captions=captions, path=media)
