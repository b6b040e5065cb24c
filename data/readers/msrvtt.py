"""MSR-VTT: the full annotation file (MSRVTT_data.json, videos of a split with all their
captions), the 1k-A retrieval test set (MSRVTT_JSFUSION_test.csv, one sentence per video) and
MSR-VTT-QA (Xu et al. 2017: <root>/MSRVTT-QA/{train,val,test}_qa.json, lists of {"answer",
"category_id", "id", "question", "video_id": int n -> video<n>}). Videos at
<root>/<video_dir>/<video_id>.mp4.
"""
from __future__ import annotations

import collections
import dataclasses
import pathlib
from typing import Any, Iterator

from data import rejects as rj
from data.readers.parse import (PathLike, csv_rows, file_ok, json_list_entries, load_json,
                                source_name, strings_ok, text_field)
from data.rejects import Rejects

MSRVTT_1KA_COLUMNS = ("key", "vid_key", "video_id", "sentence")


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class MsrvttVideo:
  """One MSR-VTT video with all its reference captions."""
  video_id: str
  split: str
  path: pathlib.Path
  captions: tuple[str, ...]
  category: int
  url: str
  start_s: float
  end_s: float


@dataclasses.dataclass(frozen=True)
class MsrvttPair:
  """One row of the MSR-VTT 1k-A retrieval test set (one sentence per video)."""
  key: str
  vid_key: str
  video_id: str
  sentence: str
  path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class MsrvttQuestion:
  """One MSR-VTT-QA question; `type` is its first word (what, who, how, when, where) or
  "other", the breakdown papers report."""
  qid: int
  video_id: str
  question: str
  answer: str
  type: str
  path: pathlib.Path


MSRVTT_QA_TYPES = ("what", "who", "how", "when", "where")


# ----------------------------------------------------------------------------------------------
# Readers.


def read_msrvtt(root: PathLike, split: str, *, rejects: Rejects, video_dir: str = "videos/all",
                check_files: bool = True) -> Iterator[MsrvttVideo]:
  """Videos of one MSR-VTT split ("train", "validate" or "test") with all their captions.

  Rejects: video or sentence entries with missing keys/bad values (malformed_row), invalid
  UTF-8 (invalid_utf8), sentences of undefined videos (unknown_video), videos without a valid
  caption (malformed_row), missing video files (missing_file).
  """
  root = pathlib.Path(root)
  path = root / "MSRVTT_data.json"
  source = source_name(root, path)
  data = load_json(path)
  if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
    raise ValueError(f"{path}: expected an object with 'videos' and 'sentences'")
  videos: dict[str, dict[str, Any]] = {}
  for i, v in enumerate(data["videos"]):
    item = f"videos[{i}]"
    if not strings_ok(v):
      rejects.add(source, item, rj.INVALID_UTF8, "a string field is not valid UTF-8")
      continue
    try:
      videos[text_field(v["video_id"], "video_id")] = {
          "split": text_field(v["split"], "split"), "category": int(v["category"]),
          "url": str(v["url"]), "start_s": float(v["start time"]), "end_s": float(v["end time"])}
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
  captions: dict[str, list[str]] = collections.defaultdict(list)
  for i, s in enumerate(data["sentences"]):
    item = f"sentences[{i}]"
    if not strings_ok(s):
      rejects.add(source, item, rj.INVALID_UTF8, "caption is not valid UTF-8")
      continue
    try:
      vid, caption = text_field(s["video_id"], "video_id"), text_field(s["caption"], "caption")
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if vid not in videos:
      rejects.add(source, item, rj.UNKNOWN_VIDEO, f"sentence for undefined video {vid!r}")
      continue
    captions[vid].append(caption)
  for vid, meta in videos.items():
    if meta["split"] != split:
      continue
    if not captions[vid]:
      rejects.add(source, f"video {vid}", rj.MALFORMED_ROW, "video has no valid caption")
      continue
    media = root / video_dir / f"{vid}.mp4"
    if not file_ok(root, media, source, f"video {vid}", rejects, check_files):
      continue
    yield MsrvttVideo(video_id=vid, split=split, path=media, captions=tuple(captions[vid]),
                      category=meta["category"], url=meta["url"], start_s=meta["start_s"],
                      end_s=meta["end_s"])


def read_msrvtt_1ka(root: PathLike, *, rejects: Rejects, csv_name: str = "MSRVTT_JSFUSION_test.csv",
                    video_dir: str = "videos/all", check_files: bool = True
                    ) -> Iterator[MsrvttPair]:
  """The 1k-A retrieval test set: one (video, sentence) per row of the JSFUSION CSV."""
  root = pathlib.Path(root)
  path = root / csv_name
  source = source_name(root, path)
  for line, row in csv_rows(path, source, MSRVTT_1KA_COLUMNS, rejects):
    try:
      vid, sentence = text_field(row["video_id"], "video_id"), text_field(row["sentence"],
                                                                           "sentence")
    except ValueError as e:
      rejects.add(source, f"line {line}", rj.MALFORMED_ROW, str(e))
      continue
    media = root / video_dir / f"{vid}.mp4"
    if not file_ok(root, media, source, f"line {line}", rejects, check_files):
      continue
    yield MsrvttPair(key=row["key"], vid_key=row["vid_key"], video_id=vid, sentence=sentence,
                     path=media)


def msrvtt_qa_splits(root: PathLike, qa_dir: str = "MSRVTT-QA") -> list[str]:
  """The MSR-VTT-QA splits whose <root>/<qa_dir>/<split>_qa.json exists."""
  return [s for s in ("train", "val", "test")
          if (pathlib.Path(root) / qa_dir / f"{s}_qa.json").is_file()]


def read_msrvtt_qa(root: PathLike, split: str, *, rejects: Rejects, qa_dir: str = "MSRVTT-QA",
                   video_dir: str = "videos/all", check_files: bool = True
                   ) -> Iterator[MsrvttQuestion]:
  """Questions of one MSR-VTT-QA split ("train", "val", "test"), in file order.

  Rejects: entries with missing keys or bad values (malformed_row), invalid UTF-8
  (invalid_utf8), missing video files (missing_file).
  """
  root = pathlib.Path(root)
  path = root / qa_dir / f"{split}_qa.json"
  source = source_name(root, path)
  for item, q in json_list_entries(path, source, rejects):
    try:
      raw_vid = q["video_id"]
      if isinstance(raw_vid, bool) or not isinstance(raw_vid, (int, str)):
        raise ValueError(f"video_id is {type(raw_vid).__name__}")
      vid = raw_vid if isinstance(raw_vid, str) else f"video{int(raw_vid)}"
      question, answer = text_field(q["question"], "question"), text_field(q["answer"], "answer")
      qid = int(q["id"])
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    first = question.split()[0].lower() if question.split() else ""
    media = root / video_dir / f"{vid}.mp4"
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield MsrvttQuestion(qid=qid, video_id=vid, question=question, answer=answer,
                         type=first if first in MSRVTT_QA_TYPES else "other", path=media)
