"""NExT-QA open-ended: <split>.csv (video,frame_count,width,height,question,answer,qid,type),
map_vid_vidorID.json {"<video>": "<dir>/<vidorid>"}, videos at <root>/NExTVideo/<dir>/<vidorid>.mp4.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterator

from data import rejects as rj
from data.readers.parse import PathLike, csv_rows, file_ok, load_json, source_name, text_field
from data.rejects import Rejects

NEXTQA_TYPES = ("CW", "CH", "TN", "TC", "TP", "DL", "DB", "DC", "DO")
NEXTQA_COLUMNS = ("video", "frame_count", "width", "height", "question", "answer", "qid", "type")


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class NextqaQuestion:
  """One NExT-QA open-ended question. `answers` = (answer, *extra reference answers)."""
  video: str
  qid: int
  question: str
  answer: str
  answers: tuple[str, ...]
  type: str
  frame_count: int
  width: int
  height: int
  path: pathlib.Path

  @property
  def key(self) -> str:
    """The official prediction key "<video>_<qid>"."""
    return f"{self.video}_{self.qid}"


# ----------------------------------------------------------------------------------------------
# Readers.


def read_nextqa(root: PathLike, split: str, *, rejects: Rejects,
                map_file: str = "map_vid_vidorID.json", video_dir: str = "NExTVideo",
                extra_answers_file: str | None = None, check_files: bool = True
                ) -> Iterator[NextqaQuestion]:
  """Questions of one NExT-QA open-ended split (<root>/<split>.csv), in file order.

  Args:
    extra_answers_file: optional JSON {"<video>": {"<qid>": "answer" or [answers]}} with extra
      reference answers (the official add_reference_answer_test.json), appended to `answers`.

  Rejects: bad field counts / non-integer numbers / unknown question types (malformed_row),
  invalid UTF-8, videos missing from the id map (unknown_video), missing files.
  """
  root = pathlib.Path(root)
  path = root / f"{split}.csv"
  source = source_name(root, path)
  vid_map = load_json(root / map_file)
  if not isinstance(vid_map, dict):
    raise ValueError(f"{root / map_file}: expected an object video -> '<dir>/<vidorid>'")
  extra: dict[str, Any] = {}
  if extra_answers_file is not None:
    extra = load_json(root / extra_answers_file)
  for line, row in csv_rows(path, source, NEXTQA_COLUMNS, rejects):
    item = f"line {line}"
    try:
      video = text_field(row["video"], "video")
      qid = int(row["qid"])
      qtype = row["type"].strip()
      if qtype not in NEXTQA_TYPES:
        raise ValueError(f"unknown question type {qtype!r}")
      question = text_field(row["question"], "question")
      answer = text_field(row["answer"], "answer")
      frame_count, width, height = int(row["frame_count"]), int(row["width"]), int(row["height"])
    except ValueError as e:
      rejects.add(source, item, rj.MALFORMED_ROW, str(e))
      continue
    if video not in vid_map:
      rejects.add(source, item, rj.UNKNOWN_VIDEO, f"video {video!r} not in {map_file}")
      continue
    media = root / video_dir / f"{vid_map[video]}.mp4"
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    more = extra.get(video, {}).get(str(qid), [])
    more = [more] if isinstance(more, str) else list(more)
    yield NextqaQuestion(video=video, qid=qid, question=question, answer=answer,
                         answers=(answer, *[a for a in more if a and a != answer]), type=qtype,
                         frame_count=frame_count, width=width, height=height, path=media)
