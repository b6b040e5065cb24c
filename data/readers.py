"""Readers of the real public annotation formats, yielding typed records.

Every reader takes the data set's root directory (and a split), reads the annotation files in the
public format and yields frozen dataclasses with resolved media paths. Bad input is never dropped
silently: a malformed row (wrong field count, bad JSON line, missing key, unparseable value),
a text field with invalid UTF-8, a row naming a missing media file or an unknown video is skipped
and recorded in the `Rejects` object passed in (counted by reason, with the file and line/index).
A missing or unreadable annotation file, or a CSV without the format's columns, is a clear error
(raised), because it means the data set itself is wrong, not one row.

Formats (columns / keys as in the public releases):
  MSR-VTT      MSRVTT_data.json {"videos":[{video_id, split, category, url, "start time",
               "end time", id}], "sentences":[{caption, video_id, sen_id}]};
               1k-A: MSRVTT_JSFUSION_test.csv with columns ",key,vid_key,video_id,sentence";
               videos at <root>/<video_dir>/<video_id>.mp4.
  NExT-QA OE   <split>.csv: video,frame_count,width,height,question,answer,qid,type;
               map_vid_vidorID.json {"<video>": "<dir>/<vidorid>"}; videos at
               <root>/NExTVideo/<dir>/<vidorid>.mp4.
  WebVid       CSV: videoid,contentUrl,duration,page_dir,name (duration ISO-8601 "PT00H00M11S").
  InternVid    JSONL with YoutubeID, Start_timestamp, End_timestamp ("HH:MM:SS.mmm"), Caption,
               and optional Aesthetic_Score, UMT_Score (InternVid-10M-FLT).
  S-MiT        <split>.csv: video_id,video_path,caption (video_path relative to root).
  VidLN        <split>.jsonl, one video per line: dataset_id, video_id, annotator_id,
               actor_narratives [{actor_idx, actor_name, description,
               time_alignment [{utterance, start_time, end_time}]}], video_path (or a template).
  Kinetics     <split>.csv: label,youtube_id,time_start,time_end,split; clips at
               <root>/<split>/<label, spaces as _>/<youtube_id>_<start:06d>_<end:06d>.mp4.
  COCO captions  {"images":[{id,file_name,height,width}],"annotations":[{id,image_id,caption}]}.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Iterator, Mapping, Sequence

from data import rejects as rj
from data.rejects import Rejects

PathLike = str | os.PathLike[str]

NEXTQA_TYPES = ("CW", "CH", "TN", "TC", "TP", "DL", "DB", "DC", "DO")
WEBVID_COLUMNS = ("videoid", "contentUrl", "duration", "page_dir", "name")
NEXTQA_COLUMNS = ("video", "frame_count", "width", "height", "question", "answer", "qid", "type")
MSRVTT_1KA_COLUMNS = ("key", "vid_key", "video_id", "sentence")
SMIT_COLUMNS = ("video_id", "video_path", "caption")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
INTERNVID_KEYS = ("YoutubeID", "Start_timestamp", "End_timestamp", "Caption")


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


@dataclasses.dataclass(frozen=True)
class WebvidClip:
  """One WebVid row; `name` is the alt-text."""
  videoid: str
  content_url: str
  duration_s: float
  page_dir: str
  name: str
  path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class InternvidClip:
  """One InternVid clip: a segment of a YouTube video with a caption.

  `segment` is (start_s, end_s) when the file is the full video, None when it is the cut clip.
  """
  youtube_id: str
  start_s: float
  end_s: float
  caption: str
  aesthetic_score: float | None
  umt_score: float | None
  path: pathlib.Path
  segment: tuple[float, float] | None

  @property
  def clip_id(self) -> str:
    return f"{self.youtube_id}_{round(self.start_s * 1000):d}_{round(self.end_s * 1000):d}"


@dataclasses.dataclass(frozen=True)
class SmitClip:
  """One Spoken-Moments-in-Time-style clip with its (transcribed, spoken) caption."""
  video_id: str
  path: pathlib.Path
  caption: str


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


@dataclasses.dataclass(frozen=True)
class CaptionedImage:
  """One COCO-captions image with all its captions."""
  image_id: int
  path: pathlib.Path
  captions: tuple[str, ...]
  width: int
  height: int


# ----------------------------------------------------------------------------------------------
# Low-level parsing helpers (private; each reader documents what it rejects).


def _valid_utf8(text: str) -> bool:
  """False when `text` holds bytes that were not UTF-8 (decoded with surrogateescape)."""
  try:
    text.encode("utf-8")
    return True
  except UnicodeEncodeError:
    return False


def _read_text(path: pathlib.Path) -> str:
  """Whole file as text; invalid UTF-8 bytes survive as lone surrogates, caught per field."""
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {path}")
  return path.read_bytes().decode("utf-8-sig", errors="surrogateescape")


def _source(root: pathlib.Path, path: pathlib.Path) -> str:
  try:
    return f"{root.name}/{path.relative_to(root)}"
  except ValueError:
    return str(path)


def _csv_rows(path: pathlib.Path, source: str, columns: Sequence[str], rejects: Rejects,
              ) -> Iterator[tuple[int, dict[str, str]]]:
  """Yields (line number, row dict) of well-formed rows; rejects the others. Streams the file
  (WebVid CSVs are gigabytes).

  Rejected: csv syntax errors and rows whose field count differs from the header
  (malformed_row), rows with invalid UTF-8 in any field (invalid_utf8). Blank lines are skipped.
  Raises FileNotFoundError for a missing file, ValueError when the header lacks one of `columns`.
  """
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {path}")
  # Invalid UTF-8 bytes survive decoding as lone surrogates and are caught per row.
  with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
    reader = csv.reader(f)
    try:
      header = next(reader)
    except StopIteration:
      raise ValueError(f"{path}: empty CSV, expected columns {list(columns)}") from None
    missing = [c for c in columns if c not in header]
    if missing:
      raise ValueError(f"{path}: CSV header {header} lacks columns {missing}")
    while True:
      try:
        row = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        rejects.add(source, f"line {reader.line_num}", rj.MALFORMED_ROW, f"csv error: {e}")
        continue
      line = f"line {reader.line_num}"
      if not row or (len(row) == 1 and not row[0].strip()):
        continue
      if len(row) != len(header):
        rejects.add(source, line, rj.MALFORMED_ROW,
                    f"{len(row)} fields, header has {len(header)}: {row!r}"[:500])
        continue
      bad = [h for h, v in zip(header, row) if not _valid_utf8(v)]
      if bad:
        rejects.add(source, line, rj.INVALID_UTF8, f"fields {bad} are not valid UTF-8")
        continue
      yield reader.line_num, dict(zip(header, row))


def _jsonl_objects(path: pathlib.Path, source: str, rejects: Rejects,
                   ) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields (line number, object) of JSON-object lines; rejects bad UTF-8 and bad JSON lines."""
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {path}")
  with path.open("rb") as f:
    for n, raw in enumerate(f, start=1):
      if not raw.strip():
        continue
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        rejects.add(source, f"line {n}", rj.INVALID_UTF8, str(e))
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        rejects.add(source, f"line {n}", rj.MALFORMED_ROW, f"bad JSON: {e}")
        continue
      if not isinstance(obj, dict):
        rejects.add(source, f"line {n}", rj.MALFORMED_ROW, "line is not a JSON object")
        continue
      yield n, obj


def load_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(_read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON: {e}") from e


def _strings_ok(obj: Any) -> bool:
  """True when every string inside a JSON value is valid UTF-8."""
  if isinstance(obj, str):
    return _valid_utf8(obj)
  if isinstance(obj, Mapping):
    return all(_strings_ok(k) and _strings_ok(v) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return all(_strings_ok(v) for v in obj)
  return True


def _file_ok(path: pathlib.Path, source: str, item: str, rejects: Rejects, check_files: bool
             ) -> bool:
  if check_files and not path.is_file():
    rejects.add(source, item, rj.MISSING_FILE, f"media file not found: {path}")
    return False
  return True


def _text_field(value: Any, name: str) -> str:
  if not isinstance(value, str):
    raise ValueError(f"{name} is {type(value).__name__}, expected a string")
  value = value.strip()
  if not value:
    raise ValueError(f"{name} is empty")
  return value


_ISO_DURATION = re.compile(
    r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_iso8601_duration(text: str) -> float:
  """'PT00H00M11S' (WebVid) -> 11.0 seconds. Raises ValueError."""
  m = _ISO_DURATION.match(text.strip())
  if not m or not any(m.groups()):
    raise ValueError(f"not an ISO-8601 duration: {text!r}")
  days, hours, minutes, seconds = m.groups()
  return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
          + float(seconds or 0))


_HMS = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$")


def parse_timestamp(text: str) -> float:
  """'HH:MM:SS.mmm' (InternVid) -> seconds. Raises ValueError."""
  m = _HMS.match(text.strip())
  if not m:
    raise ValueError(f"not an HH:MM:SS.mmm timestamp: {text!r}")
  return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


# ----------------------------------------------------------------------------------------------
# MSR-VTT.


def read_msrvtt(root: PathLike, split: str, *, rejects: Rejects, video_dir: str = "videos/all",
                check_files: bool = True) -> Iterator[MsrvttVideo]:
  """Videos of one MSR-VTT split ("train", "validate" or "test") with all their captions.

  Rejects: video or sentence entries with missing keys/bad values (malformed_row), invalid
  UTF-8 (invalid_utf8), sentences of undefined videos (unknown_video), videos without a valid
  caption (malformed_row), missing video files (missing_file).
  """
  root = pathlib.Path(root)
  path = root / "MSRVTT_data.json"
  source = _source(root, path)
  data = load_json(path)
  if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
    raise ValueError(f"{path}: expected an object with 'videos' and 'sentences'")
  videos: dict[str, dict[str, Any]] = {}
  for i, v in enumerate(data["videos"]):
    item = f"videos[{i}]"
    if not _strings_ok(v):
      rejects.add(source, item, rj.INVALID_UTF8, "a string field is not valid UTF-8")
      continue
    try:
      videos[_text_field(v["video_id"], "video_id")] = {
          "split": _text_field(v["split"], "split"), "category": int(v["category"]),
          "url": str(v["url"]), "start_s": float(v["start time"]), "end_s": float(v["end time"])}
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
  captions: dict[str, list[str]] = collections.defaultdict(list)
  for i, s in enumerate(data["sentences"]):
    item = f"sentences[{i}]"
    if not _strings_ok(s):
      rejects.add(source, item, rj.INVALID_UTF8, "caption is not valid UTF-8")
      continue
    try:
      vid, caption = _text_field(s["video_id"], "video_id"), _text_field(s["caption"], "caption")
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
    if not _file_ok(media, source, f"video {vid}", rejects, check_files):
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
  source = _source(root, path)
  for line, row in _csv_rows(path, source, MSRVTT_1KA_COLUMNS, rejects):
    try:
      vid, sentence = _text_field(row["video_id"], "video_id"), _text_field(row["sentence"],
                                                                            "sentence")
    except ValueError as e:
      rejects.add(source, f"line {line}", rj.MALFORMED_ROW, str(e))
      continue
    media = root / video_dir / f"{vid}.mp4"
    if not _file_ok(media, source, f"line {line}", rejects, check_files):
      continue
    yield MsrvttPair(key=row["key"], vid_key=row["vid_key"], video_id=vid, sentence=sentence,
                     path=media)


# ----------------------------------------------------------------------------------------------
# NExT-QA open-ended.


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
  source = _source(root, path)
  vid_map = load_json(root / map_file)
  if not isinstance(vid_map, dict):
    raise ValueError(f"{root / map_file}: expected an object video -> '<dir>/<vidorid>'")
  extra: dict[str, Any] = {}
  if extra_answers_file is not None:
    extra = load_json(root / extra_answers_file)
  for line, row in _csv_rows(path, source, NEXTQA_COLUMNS, rejects):
    item = f"line {line}"
    try:
      video = _text_field(row["video"], "video")
      qid = int(row["qid"])
      qtype = row["type"].strip()
      if qtype not in NEXTQA_TYPES:
        raise ValueError(f"unknown question type {qtype!r}")
      question = _text_field(row["question"], "question")
      answer = _text_field(row["answer"], "answer")
      frame_count, width, height = int(row["frame_count"]), int(row["width"]), int(row["height"])
    except ValueError as e:
      rejects.add(source, item, rj.MALFORMED_ROW, str(e))
      continue
    if video not in vid_map:
      rejects.add(source, item, rj.UNKNOWN_VIDEO, f"video {video!r} not in {map_file}")
      continue
    media = root / video_dir / f"{vid_map[video]}.mp4"
    if not _file_ok(media, source, item, rejects, check_files):
      continue
    more = extra.get(video, {}).get(str(qid), [])
    more = [more] if isinstance(more, str) else list(more)
    yield NextqaQuestion(video=video, qid=qid, question=question, answer=answer,
                         answers=(answer, *[a for a in more if a and a != answer]), type=qtype,
                         frame_count=frame_count, width=width, height=height, path=media)


# ----------------------------------------------------------------------------------------------
# Unlabeled pools: WebVid and InternVid.


def read_webvid(root: PathLike, csv_name: str, *, rejects: Rejects,
                path_template: str = "{contentUrl}", check_files: bool = True
                ) -> Iterator[WebvidClip]:
  """Rows of a WebVid CSV.

  Args:
    csv_name: the CSV under root (e.g. "results_2M_train.csv", the demo's "results_pool.csv").
    path_template: media path relative to root, formatted with the row's columns (videoid,
      contentUrl, duration, page_dir, name). The demo stores a relative path in contentUrl;
      a real download (video2dataset) typically needs "videos/{page_dir}/{videoid}.mp4".

  Rejects: bad field counts, unparseable durations, empty ids (malformed_row), invalid UTF-8
  (e.g. in `name`), missing files.
  """
  root = pathlib.Path(root)
  path = root / csv_name
  source = _source(root, path)
  for line, row in _csv_rows(path, source, WEBVID_COLUMNS, rejects):
    item = f"line {line}"
    try:
      videoid = _text_field(row["videoid"], "videoid")
      duration = parse_iso8601_duration(row["duration"])
      name = _text_field(row["name"], "name")
      media = root / path_template.format(**row)
    except (ValueError, KeyError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if not _file_ok(media, source, item, rejects, check_files):
      continue
    yield WebvidClip(videoid=videoid, content_url=row["contentUrl"], duration_s=duration,
                     page_dir=row["page_dir"], name=name, path=media)


def read_internvid(root: PathLike, jsonl_name: str, *, rejects: Rejects,
                   path_template: str = "videos/{YoutubeID}.mp4", full_videos: bool = True,
                   check_files: bool = True) -> Iterator[InternvidClip]:
  """Clips of an InternVid JSONL file (e.g. InternVid-10M-FLT.jsonl).

  Args:
    jsonl_name: the JSONL file under root.
    path_template: media path relative to root, formatted with the line's keys plus start_ms and
      end_ms (integers), e.g. "videos/{YoutubeID}.mp4" (full videos) or
      "clips/{YoutubeID}_{start_ms}_{end_ms}.mp4" (pre-cut clips).
    full_videos: True when the file is the whole YouTube video, so the clip is decoded as the
      segment [Start_timestamp, End_timestamp); False when the file is already the cut clip.

  Rejects: bad JSON, missing keys, unparseable timestamps, end <= start, non-numeric scores
  (malformed_row), invalid UTF-8, missing files.
  """
  root = pathlib.Path(root)
  path = root / jsonl_name
  source = _source(root, path)
  for line, obj in _jsonl_objects(path, source, rejects):
    item = f"line {line}"
    try:
      missing = [k for k in INTERNVID_KEYS if k not in obj]
      if missing:
        raise ValueError(f"missing keys {missing}")
      youtube_id = _text_field(obj["YoutubeID"], "YoutubeID")
      start, end = parse_timestamp(obj["Start_timestamp"]), parse_timestamp(obj["End_timestamp"])
      if end <= start:
        raise ValueError(f"End_timestamp {end} <= Start_timestamp {start}")
      caption = _text_field(obj["Caption"], "Caption")
      aesthetic = float(obj["Aesthetic_Score"]) if "Aesthetic_Score" in obj else None
      umt = float(obj["UMT_Score"]) if "UMT_Score" in obj else None
      media = root / path_template.format(**obj, start_ms=round(start * 1000),
                                          end_ms=round(end * 1000))
    except (ValueError, TypeError, KeyError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if not _file_ok(media, source, item, rejects, check_files):
      continue
    yield InternvidClip(youtube_id=youtube_id, start_s=start, end_s=end, caption=caption,
                        aesthetic_score=aesthetic, umt_score=umt, path=media,
                        segment=(start, end) if full_videos else None)


# ----------------------------------------------------------------------------------------------
# S-MiT, VidLN, Kinetics, COCO captions.


def read_smit(root: PathLike, split: str, *, rejects: Rejects, check_files: bool = True
              ) -> Iterator[SmitClip]:
  """Clips of <root>/<split>.csv (video_id,video_path,caption; video_path relative to root)."""
  root = pathlib.Path(root)
  path = root / f"{split}.csv"
  source = _source(root, path)
  for line, row in _csv_rows(path, source, SMIT_COLUMNS, rejects):
    item = f"line {line}"
    try:
      video_id = _text_field(row["video_id"], "video_id")
      media = root / _text_field(row["video_path"], "video_path")
      caption = _text_field(row["caption"], "caption")
    except ValueError as e:
      rejects.add(source, item, rj.MALFORMED_ROW, str(e))
      continue
    if not _file_ok(media, source, item, rejects, check_files):
      continue
    yield SmitClip(video_id=video_id, path=media, caption=caption)


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
  source = _source(root, path)
  for line, obj in _jsonl_objects(path, source, rejects):
    item = f"line {line}"
    try:
      video_id = _text_field(obj["video_id"], "video_id")
      rel = obj["video_path"] if path_template is None else path_template.format(**obj)
      media = root / _text_field(rel, "video_path")
      narratives = tuple(
          ActorNarrative(actor_idx=int(a["actor_idx"]),
                         actor_name=_text_field(a["actor_name"], "actor_name"),
                         description=_text_field(a["description"], "description"),
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
    if not _file_ok(media, source, item, rejects, check_files):
      continue
    yield record


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
  source = _source(root, path)
  for line, row in _csv_rows(path, source, KINETICS_COLUMNS, rejects):
    item = f"line {line}"
    try:
      label = _text_field(row["label"], "label")
      youtube_id = _text_field(row["youtube_id"], "youtube_id")
      start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except ValueError as e:
      rejects.add(source, item, rj.MALFORMED_ROW, str(e))
      continue
    media = kinetics_path(root, split, label, youtube_id, start, end)
    if not _file_ok(media, source, item, rejects, check_files):
      continue
    yield KineticsClip(label=label, youtube_id=youtube_id, time_start=start, time_end=end,
                       split=row["split"].strip() or split, path=media)


def read_coco_captions(root: PathLike, split: str, *, rejects: Rejects,
                       annotation_template: str = "captions_{split}.json",
                       image_dir: str = "images", check_files: bool = True
                       ) -> Iterator[CaptionedImage]:
  """Images of a COCO-captions file with all their captions, in the file's image order.

  Args:
    annotation_template: annotation file under root ("{split}" is replaced), e.g.
      "annotations/captions_{split}2017.json" for COCO 2017.
    image_dir: image directory under root ("{split}" is replaced), e.g. "{split}2017".

  Rejects: entries with missing keys (malformed_row), invalid UTF-8, captions of undefined
  images (unknown_video), images without a caption (malformed_row), missing image files.
  """
  root = pathlib.Path(root)
  path = root / annotation_template.format(split=split)
  source = _source(root, path)
  data = load_json(path)
  if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
    raise ValueError(f"{path}: expected an object with 'images' and 'annotations'")
  images: dict[int, dict[str, Any]] = {}
  for i, im in enumerate(data["images"]):
    item = f"images[{i}]"
    if not _strings_ok(im):
      rejects.add(source, item, rj.INVALID_UTF8, "a string field is not valid UTF-8")
      continue
    try:
      images[int(im["id"])] = {"file_name": _text_field(im["file_name"], "file_name"),
                               "width": int(im["width"]), "height": int(im["height"])}
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
  captions: dict[int, list[str]] = collections.defaultdict(list)
  for i, a in enumerate(data["annotations"]):
    item = f"annotations[{i}]"
    if not _strings_ok(a):
      rejects.add(source, item, rj.INVALID_UTF8, "caption is not valid UTF-8")
      continue
    try:
      image_id, caption = int(a["image_id"]), _text_field(a["caption"], "caption")
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if image_id not in images:
      rejects.add(source, item, rj.UNKNOWN_VIDEO, f"caption for undefined image {image_id}")
      continue
    captions[image_id].append(caption)
  for image_id, meta in images.items():
    if not captions[image_id]:
      rejects.add(source, f"image {image_id}", rj.MALFORMED_ROW, "image has no valid caption")
      continue
    media = root / image_dir.format(split=split) / meta["file_name"]
    if not _file_ok(media, source, f"image {image_id}", rejects, check_files):
      continue
    yield CaptionedImage(image_id=image_id, path=media, captions=tuple(captions[image_id]),
                         width=meta["width"], height=meta["height"])
