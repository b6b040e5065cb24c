"""VidLN (Video Localized Narratives): <split>.jsonl, one video per line, with one narrative
per actor whose utterances are aligned to video time.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterator, Mapping

from data import rejects as rj
from data.readers.parse import PathLike, file_ok, jsonl_objects, source_name, text_field
from data.rejects import Rejects


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class Utterance:
  """A word or phrase of a narrative aligned to video time."""
  utterance: str
  start_s: float
  end_s: float


@dataclasses.dataclass(frozen=True)
class ActorNarrative:
  """A VidLN narrative about one actor."""
  actor_idx: int
  actor_name: str
  description: str
  time_alignment: tuple[Utterance, ...]


@dataclasses.dataclass(frozen=True)
class VidlnVideo:
  """One VidLN annotation (one video, one annotator, one narrative per actor)."""
  dataset_id: str
  video_id: str
  annotator_id: str
  path: pathlib.Path
  narratives: tuple[ActorNarrative, ...]


# ----------------------------------------------------------------------------------------------
# Readers.


def _utterance(obj: Mapping[str, Any]) -> Utterance:
  start, end = float(obj["start_time"]), float(obj["end_time"])
  if end < start:
    raise ValueError(f"utterance end {end} < start {start}")
  return Utterance(utterance=str(obj["utterance"]), start_s=start, end_s=end)


def read_vidln(root: PathLike, split: str, *, rejects: Rejects, path_template: str | None = None,
               check_files: bool = True) -> Iterator[VidlnVideo]:
  """Videos of <root>/<split>.jsonl with their actor narratives.

  Args:
    path_template: None: media path = the line's "video_path" (relative to root). Otherwise a
      template formatted with the line's keys, e.g. "{dataset_id}/{video_id}.mp4" for the public
      release (which names videos by id only).

  Rejects: bad JSON, missing keys, empty descriptions, bad times (malformed_row), invalid UTF-8,
  missing files.
  """
  root = pathlib.Path(root)
  path = root / f"{split}.jsonl"
  source = source_name(root, path)
  for line, obj in jsonl_objects(path, source, rejects):
    item = f"line {line}"
    try:
      video_id = text_field(obj["video_id"], "video_id")
      rel = obj["video_path"] if path_template is None else path_template.format(**obj)
      media = root / text_field(rel, "video_path")
      narratives = tuple(
          ActorNarrative(actor_idx=int(a["actor_idx"]),
                         actor_name=text_field(a["actor_name"], "actor_name"),
                         description=text_field(a["description"], "description"),
                         time_alignment=tuple(_utterance(u) for u in a["time_alignment"]))
          for a in obj["actor_narratives"])
      if not narratives:
        raise ValueError("no actor narrative")
      record = VidlnVideo(dataset_id=str(obj["dataset_id"]), video_id=video_id,
                          annotator_id=str(obj["annotator_id"]), path=media,
                          narratives=narratives)
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield record
