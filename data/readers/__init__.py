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
               MSR-VTT-QA: MSRVTT-QA/<split>_qa.json [{answer, category_id, id, question,
               video_id: int n -> video<n>}].
  ActivityNet  Captions: <split>.json {"v_<id>": {duration, timestamps [[s, e]], sentences}};
               QA: <split>_q.json [{question, question_id, video_name}] + <split>_a.json
               [{answer, question_id, type 0-8}]; videos at <root>/videos/v_<id>.mp4.
  VATEX        vatex_{training_v1.0,validation_v1.0,public_test_english_v1.1}.json
               [{videoID "<yt id>_<start>_<end>", enCap [10], chCap}]; clips <videoID>.mp4.
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

# One module per data-set family, each with its record dataclasses next to its reader: msrvtt
# (MSR-VTT, 1k-A, MSR-VTT-QA), nextqa (NExT-QA open-ended), activitynet (ActivityNet Captions and
# ActivityNet-QA), vatex, pools (WebVid, InternVid), smit, vidln, kinetics, coco (COCO captions); parse holds the low-level parsing they share. The names below are the
# readers' public API: `from data import readers`.
from data.readers.activitynet import (ANET_QA_TYPES, AnetQuestion, AnetSegment, read_anet_captions,
                                      read_anet_qa)
from data.readers.coco import CaptionedImage, read_coco_captions
from data.readers.kinetics import KINETICS_COLUMNS, KineticsClip, kinetics_path, read_kinetics
from data.readers.msrvtt import (MSRVTT_1KA_COLUMNS, MSRVTT_QA_TYPES, MsrvttPair,
                                 MsrvttQuestion, MsrvttVideo, msrvtt_qa_splits, read_msrvtt,
                                 read_msrvtt_1ka, read_msrvtt_qa)
from data.readers.nextqa import NEXTQA_COLUMNS, NEXTQA_TYPES, NextqaQuestion, read_nextqa
from data.readers.parse import PathLike, load_json, parse_iso8601_duration, parse_timestamp
from data.readers.pools import (INTERNVID_KEYS, WEBVID_COLUMNS, InternvidClip, WebvidClip,
                                read_internvid, read_webvid)
from data.readers.smit import SMIT_COLUMNS, SmitClip, read_smit
from data.readers.vatex import VATEX_FILES, VatexClip, read_vatex, vatex_splits
from data.readers.vidln import ActorNarrative, Utterance, VidlnVideo, read_vidln

__all__ = [
    # Formats' constants.
    "ANET_QA_TYPES", "INTERNVID_KEYS", "KINETICS_COLUMNS", "MSRVTT_1KA_COLUMNS", "MSRVTT_QA_TYPES",
    "NEXTQA_COLUMNS", "NEXTQA_TYPES", "SMIT_COLUMNS", "VATEX_FILES", "WEBVID_COLUMNS",
    # Records.
    "ActorNarrative", "AnetQuestion", "AnetSegment", "CaptionedImage", "InternvidClip",
    "KineticsClip", "MsrvttPair", "MsrvttQuestion", "MsrvttVideo", "NextqaQuestion", "SmitClip",
    "Utterance", "VatexClip", "VidlnVideo", "WebvidClip",
    # Readers.
    "msrvtt_qa_splits", "read_anet_captions", "read_anet_qa", "read_coco_captions",
    "read_internvid", "read_kinetics", "read_msrvtt", "read_msrvtt_1ka", "read_msrvtt_qa",
    "read_nextqa", "read_smit", "read_vatex", "read_vidln", "read_webvid", "vatex_splits",
    # Helpers.
    "PathLike", "kinetics_path", "load_json", "parse_iso8601_duration", "parse_timestamp",
]
