"""ActivityNet Captions (Krishna et al. 2017) and ActivityNet-QA (Yu et al. 2019), public layouts.

Captions: <root>/<split>.json (train, val_1, val_2) = {"v_<youtube id>": {"duration": s,
"timestamps": [[start_s, end_s], ...], "sentences": [str, ...]}}, one sentence per timestamp.
QA: <root>/<split>_q.json = [{"question", "question_id", "video_name"}] and <root>/<split>_a.json
= [{"answer", "question_id", "type": 0-8}], matched by question_id.
Videos at <root>/<video_dir>/v_<youtube id>.mp4 (the Captions ids carry the "v_" already).
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterator

from data import rejects as rj
from data.readers.parse import (PathLike, file_ok, json_list_entries, load_json, source_name,
                                strings_ok, text_field)
from data.rejects import Rejects

# ActivityNet-QA's question types (the `type` field of the answer files).
ANET_QA_TYPES = ("motion", "spatial", "temporal", "yes_no", "color", "object", "location",
                 "number", "other")


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class AnetSegment:
  """One captioned segment of an ActivityNet video: the clip [start_s, end_s] and its sentence."""
  key: str  # "<video id>_<segment index>"
  video_id: str
  segment: tuple[float, float]
  sentence: str
  duration_s: float
  path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class AnetQuestion:
  """One ActivityNet-QA question with its answer and type name."""
  question_id: str
  video_id: str
  question: str
  answer: str
  type: str
  path: pathlib.Path


# ----------------------------------------------------------------------------------------------
# Readers.


def read_anet_captions(root: PathLike, split: str, *, rejects: Rejects, video_dir: str = "videos",
                       check_files: bool = True) -> Iterator[AnetSegment]:
  """Segments of one ActivityNet Captions split (train, val_1, val_2), in file order.

  Rejects: videos or segments with missing keys, bad values, timestamps and sentences of
  different counts or a segment outside [0, duration] (malformed_row), invalid UTF-8
  (invalid_utf8), missing video files (missing_file).
  """
  root = pathlib.Path(root)
  path = root / f"{split}.json"
  source = source_name(root, path)
  data = load_json(path)
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected an object of videos")
  for vid, entry in data.items():
    item = f"video {vid}"
    if not strings_ok(entry) or not strings_ok(vid):
      rejects.add(source, item, rj.INVALID_UTF8, "a string field is not valid UTF-8")
      continue
    try:
      duration = float(entry["duration"])
      stamps = [(float(a), float(b)) for a, b in entry["timestamps"]]
      sentences = [text_field(s, "sentence") for s in entry["sentences"]]
      if len(stamps) != len(sentences):
        raise ValueError(f"{len(stamps)} timestamps for {len(sentences)} sentences")
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    media = root / video_dir / f"{vid}.mp4"
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    for i, ((start, end), sentence) in enumerate(zip(stamps, sentences)):
      if not 0 <= start < end or start >= duration:
        rejects.add(source, f"{item} segment {i}", rj.MALFORMED_ROW,
                    f"segment [{start}, {end}] outside the video's [0, {duration}]")
        continue
      yield AnetSegment(key=f"{vid}_{i}", video_id=vid, segment=(start, min(end, duration)),
                        sentence=sentence, duration_s=duration, path=media)


def _by_question_id(path: pathlib.Path, source: str, rejects: Rejects,
                    fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
  out: dict[str, dict[str, Any]] = {}
  for item, e in json_list_entries(path, source, rejects, item_prefix=path.name):
    try:
      qid = text_field(e["question_id"], "question_id")
      out[qid] = {f: e[f] for f in fields}
    except (KeyError, TypeError, ValueError) as err:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(err).__name__}: {err}")
  return out


def read_anet_qa(root: PathLike, split: str, *, rejects: Rejects, video_dir: str = "videos",
                 check_files: bool = True) -> Iterator[AnetQuestion]:
  """Questions of one ActivityNet-QA split (train, val, test) with their answers, in the order
  of the question file.

  Rejects: entries with missing keys or bad values and questions without an answer
  (malformed_row), invalid UTF-8 (invalid_utf8), missing video files (missing_file).
  """
  root = pathlib.Path(root)
  qpath, apath = root / f"{split}_q.json", root / f"{split}_a.json"
  source = source_name(root, qpath)
  questions = _by_question_id(qpath, source, rejects, ("question", "video_name"))
  answers = _by_question_id(apath, source_name(root, apath), rejects, ("answer", "type"))
  for qid, q in questions.items():
    item = f"question {qid}"
    try:
      if qid not in answers:
        raise ValueError("no answer in the answer file")
      a = answers[qid]
      question = text_field(q["question"], "question")
      answer = text_field(a["answer"], "answer")
      kind = int(a["type"])
      if not 0 <= kind < len(ANET_QA_TYPES):
        raise ValueError(f"type {kind} is not 0..{len(ANET_QA_TYPES) - 1}")
      name = text_field(q["video_name"], "video_name")
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    vid = name if name.startswith("v_") else f"v_{name}"
    media = root / video_dir / f"{vid}.mp4"
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield AnetQuestion(question_id=qid, video_id=vid, question=question, answer=answer,
                       type=ANET_QA_TYPES[kind], path=media)
