"""VidLN-format narratives, the only input of instruction synthesis, as prompts need them.

Reading and row validation are data.readers.read_vidln's (the VidLN reader of the data layer): a
bad line is skipped and recorded in a data.rejects.Rejects with its reason, never dropped
silently. Here each annotation becomes a `Narrative` with a stable clip id and a video path
relative to the narratives file's directory (the dataset's `video_root`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

from data import readers
from data import rejects as rejects_lib


@dataclasses.dataclass(frozen=True)
class ActorNarrative:
  actor_idx: int
  actor_name: str
  description: str


@dataclasses.dataclass(frozen=True)
class Narrative:
  """All actor narratives one annotator wrote for one video."""
  clip_id: str          # video_id, or video_id~annotator_id when a video has several narratives
  video_id: str
  video_path: str       # relative to the narratives file's directory
  annotator_id: str
  actors: tuple[ActorNarrative, ...]

  def text(self) -> str:
    """The narrative as the sentences an LLM receives: one line per actor."""
    return "\n".join(f"{a.actor_name}: {a.description.strip()}" for a in self.actors)


DUPLICATE = "duplicate"   # the same (video_id, annotator_id) twice


def read(path: str | pathlib.Path, rejects: rejects_lib.Rejects, path_template: str,
         check_files: bool) -> list[Narrative]:
  """Narratives of a VidLN JSONL file, sorted by clip id.

  Args:
    path: <root>/<split>.jsonl.
    rejects: receives every skipped line (malformed rows, missing videos, duplicates).
    path_template: '' = each line's "video_path" (relative to root); else a template formatted
      with the line's keys, e.g. "{dataset_id}/{video_id}.mp4" (the public release has no paths).
    check_files: reject lines whose video file does not exist (synthesis reads text only, so a
      user may synthesize before the videos are downloaded).
  """
  path = pathlib.Path(path)
  root = path.parent
  videos = list(readers.read_vidln(root, path.stem, rejects=rejects,
                                   path_template=path_template or None, check_files=check_files))
  per_video: dict[str, int] = {}
  for v in videos:
    per_video[v.video_id] = per_video.get(v.video_id, 0) + 1
  out: dict[str, Narrative] = {}
  for v in videos:
    clip_id = v.video_id if per_video[v.video_id] == 1 else f"{v.video_id}~{v.annotator_id}"
    if clip_id in out:
      rejects.add(str(path), f"video {v.video_id} annotator {v.annotator_id}", DUPLICATE,
                  "the same (video_id, annotator_id) appears twice; the first line is kept")
      continue
    actors = tuple(ActorNarrative(a.actor_idx, a.actor_name.strip(), a.description.strip())
                   for a in v.narratives)
    video_path = str(pathlib.Path(v.path).relative_to(root)) if pathlib.Path(v.path).is_relative_to(
        root) else str(v.path)
    out[clip_id] = Narrative(clip_id, v.video_id, video_path, v.annotator_id, actors)
  return [out[k] for k in sorted(out)]


def fingerprint(narratives: list[Narrative]) -> str:
  """sha256 over the parsed narratives: a changed input invalidates a dataset version."""
  h = hashlib.sha256()
  for nar in narratives:
    h.update(json.dumps(dataclasses.asdict(nar), sort_keys=True).encode())
  return h.hexdigest()
