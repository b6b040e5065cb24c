"""Unlabeled pools: WebVid (CSV videoid,contentUrl,duration,page_dir,name; ISO-8601 durations)
and InternVid (JSONL with YoutubeID, Start_timestamp, End_timestamp, Caption and optional scores).
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Iterator

from data import rejects as rj
from data.readers.parse import (PathLike, csv_rows, file_ok, jsonl_objects,
                                parse_iso8601_duration, parse_timestamp, source_name, text_field)
from data.rejects import Rejects

WEBVID_COLUMNS = ("videoid", "contentUrl", "duration", "page_dir", "name")
INTERNVID_KEYS = ("YoutubeID", "Start_timestamp", "End_timestamp", "Caption")


# ----------------------------------------------------------------------------------------------
# Records.


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


# ----------------------------------------------------------------------------------------------
# Readers.


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
  source = source_name(root, path)
  for line, row in csv_rows(path, source, WEBVID_COLUMNS, rejects):
    item = f"line {line}"
    try:
      videoid = text_field(row["videoid"], "videoid")
      duration = parse_iso8601_duration(row["duration"])
      name = text_field(row["name"], "name")
      media = root / path_template.format(**row)
    except (ValueError, KeyError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if not file_ok(root, media, source, item, rejects, check_files):
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
  source = source_name(root, path)
  for line, obj in jsonl_objects(path, source, rejects):
    item = f"line {line}"
    try:
      missing = [k for k in INTERNVID_KEYS if k not in obj]
      if missing:
        raise ValueError(f"missing keys {missing}")
      youtube_id = text_field(obj["YoutubeID"], "YoutubeID")
      start, end = parse_timestamp(obj["Start_timestamp"]), parse_timestamp(obj["End_timestamp"])
      if end <= start:
        raise ValueError(f"End_timestamp {end} <= Start_timestamp {start}")
      caption = text_field(obj["Caption"], "Caption")
      aesthetic = float(obj["Aesthetic_Score"]) if "Aesthetic_Score" in obj else None
      umt = float(obj["UMT_Score"]) if "UMT_Score" in obj else None
      media = root / path_template.format(**obj, start_ms=round(start * 1000),
                                          end_ms=round(end * 1000))
    except (ValueError, TypeError, KeyError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if not file_ok(root, media, source, item, rejects, check_files):
      continue
    yield InternvidClip(youtube_id=youtube_id, start_s=start, end_s=end, caption=caption,
                        aesthetic_score=aesthetic, umt_score=umt, path=media,
                        segment=(start, end) if full_videos else None)
