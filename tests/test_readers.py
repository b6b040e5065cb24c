"""Readers of the real formats: the demo world's files match the public formats and parse fully;
per-format bad rows are rejected with the right reason."""
import csv
import json
import pathlib

import numpy as np
import pytest

from data import readers
from data import rejects as rj
from data import tfds_builders as tb
from data import video
from data.rejects import Rejects


def _header(path: pathlib.Path) -> list[str]:
  with path.open(newline="", encoding="utf-8") as f:
    return next(csv.reader(f))


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
  with path.open(newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def test_demo_world_files_have_the_public_columns(demo_world):
  w = demo_world
  assert _header(w / "webvid" / "results_pool.csv") == list(readers.WEBVID_COLUMNS)
  assert _header(w / "msrvtt" / "MSRVTT_JSFUSION_test.csv") == ["", *readers.MSRVTT_1KA_COLUMNS]
  for split in ("val", "test"):
    assert _header(w / "nextqa" / f"{split}.csv") == list(readers.NEXTQA_COLUMNS)
    assert {r["type"] for r in _rows(w / "nextqa" / f"{split}.csv")} <= set(readers.NEXTQA_TYPES)
  for split in ("train", "val"):
    assert _header(w / "smit" / f"{split}.csv") == list(readers.SMIT_COLUMNS)
  assert _header(w / "kinetics" / "test.csv") == list(readers.KINETICS_COLUMNS)
  data = json.loads((w / "msrvtt" / "MSRVTT_data.json").read_text())
  assert set(data) >= {"info", "videos", "sentences"}
  for v in data["videos"]:
    assert set(v) >= {"category", "url", "video_id", "start time", "end time", "split", "id"}
    assert v["split"] in ("train", "validate", "test")
  for s in data["sentences"]:
    assert set(s) >= {"caption", "video_id", "sen_id"}
  vid_map = json.loads((w / "nextqa" / "map_vid_vidorID.json").read_text())
  assert all(isinstance(v, str) and v.count("/") == 1 for v in vid_map.values())
  for split in ("train", "val"):
    coco = json.loads((w / "stills" / f"captions_{split}.json").read_text())
    assert all(set(im) >= {"id", "file_name", "height", "width"} for im in coco["images"])
    assert all(set(a) >= {"id", "image_id", "caption"} for a in coco["annotations"])
  with (w / "vidln" / "train.jsonl").open() as f:
    for line in f:
      obj = json.loads(line)
      assert set(obj) >= {"dataset_id", "video_id", "video_path", "annotator_id",
                          "actor_narratives"}
      for a in obj["actor_narratives"]:
        assert set(a) >= {"actor_idx", "actor_name", "description", "time_alignment"}
        assert all(set(u) >= {"utterance", "start_time", "end_time"} for u in a["time_alignment"])
  for row in _rows(w / "webvid" / "results_pool.csv"):
    assert readers.parse_iso8601_duration(row["duration"]) > 0


def test_every_reader_parses_the_demo_world(demo_world):
  w = demo_world
  rejects = Rejects("demo")
  checks = {
      "msrvtt": (list(readers.read_msrvtt(w / "msrvtt", "test", rejects=rejects)),
                 sum(v["split"] == "test" for v in json.loads(
                     (w / "msrvtt" / "MSRVTT_data.json").read_text())["videos"])),
      "msrvtt_1ka": (list(readers.read_msrvtt_1ka(w / "msrvtt", rejects=rejects)),
                     len(_rows(w / "msrvtt" / "MSRVTT_JSFUSION_test.csv"))),
      "webvid": (list(readers.read_webvid(w / "webvid", "results_pool.csv", rejects=rejects)),
                 len(_rows(w / "webvid" / "results_pool.csv"))),
      "kinetics": (list(readers.read_kinetics(w / "kinetics", "test", rejects=rejects)),
                   len(_rows(w / "kinetics" / "test.csv"))),
      "vidln": (list(readers.read_vidln(w / "vidln", "train", rejects=rejects)),
                len((w / "vidln" / "train.jsonl").read_text().strip().splitlines())),
  }
  for split in ("val", "test"):
    checks[f"nextqa_{split}"] = (list(readers.read_nextqa(w / "nextqa", split, rejects=rejects)),
                                 len(_rows(w / "nextqa" / f"{split}.csv")))
  for split in ("train", "val"):
    checks[f"smit_{split}"] = (list(readers.read_smit(w / "smit", split, rejects=rejects)),
                               len(_rows(w / "smit" / f"{split}.csv")))
    coco = json.loads((w / "stills" / f"captions_{split}.json").read_text())
    checks[f"stills_{split}"] = (list(readers.read_coco_captions(w / "stills", split,
                                                                 rejects=rejects)),
                                 len(coco["images"]))
  # Anything rejected must be a counted annotation entry, never a whole clip or row here.
  assert all(r.item.startswith("annotations[") for r in rejects.records), rejects.records
  for name, (records, expected) in checks.items():
    assert expected > 0 and len(records) == expected, name
    for r in records:
      assert r.path.is_file(), (name, r)
  msrvtt = checks["msrvtt"][0]
  assert all(len(v.captions) >= 2 for v in msrvtt)  # several references per clip
  nextqa = checks["nextqa_val"][0]
  assert all(q.question and q.answer and q.answers[0] == q.answer for q in nextqa)
  assert len({q.key for q in nextqa}) == len(nextqa)
  for v in checks["vidln"][0]:
    for a in v.narratives:
      assert a.description and all(u.end_s >= u.start_s for u in a.time_alignment)
  for c in checks["kinetics"][0]:
    assert c.path == readers.kinetics_path(w / "kinetics", "test", c.label, c.youtube_id,
                                           c.time_start, c.time_end)
  stills = checks["stills_train"][0]
  assert sum(len(s.captions) for s in stills) + rejects.total == len(json.loads(
      (w / "stills" / "captions_train.json").read_text())["annotations"])


def test_demo_world_text_is_clean(demo_world):
  """The generated world has no empty or malformed caption (a reader reject means a world bug)."""
  rejects = Rejects("demo")
  for split in ("train", "val"):
    list(readers.read_coco_captions(demo_world / "stills", split, rejects=rejects))
    list(readers.read_smit(demo_world / "smit", split, rejects=rejects))
  list(readers.read_msrvtt(demo_world / "msrvtt", "test", rejects=rejects))
  list(readers.read_vidln(demo_world / "vidln", "train", rejects=rejects))
  assert rejects.total == 0, rejects.records


def test_internvid_jsonl_with_timestamps_and_scores(demo_world, tmp_path):
  """InternVid-10M-FLT-style lines over demo clips used as 'full YouTube videos'."""
  src = sorted((demo_world / "webvid" / "videos").glob("*.mp4"))[:2]
  root = tmp_path / "internvid"
  (root / "videos").mkdir(parents=True)
  lines = []
  for i, clip in enumerate(src):
    (root / "videos" / f"yt{i}.mp4").write_bytes(clip.read_bytes())
    lines.append({"YoutubeID": f"yt{i}", "Start_timestamp": "00:00:01.000",
                  "End_timestamp": "00:00:03.500", "Caption": f"a clip {i}",
                  "Aesthetic_Score": 4.5 + i, "UMT_Score": 0.4})
  lines.append({"YoutubeID": "yt0", "Start_timestamp": "00:00:03.000",
                "End_timestamp": "00:00:02.000", "Caption": "end before start"})
  lines.append({"YoutubeID": "yt0", "Start_timestamp": "3s", "End_timestamp": "00:00:04.000",
                "Caption": "bad timestamp"})
  lines.append({"YoutubeID": "yt9", "Start_timestamp": "00:00:00.000",
                "End_timestamp": "00:00:01.000", "Caption": "no such video"})
  (root / "InternVid-10M-FLT.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
  rejects = Rejects("internvid")
  clips = list(readers.read_internvid(root, "InternVid-10M-FLT.jsonl", rejects=rejects))
  assert [c.youtube_id for c in clips] == ["yt0", "yt1"]
  assert clips[0].segment == (1.0, 3.5) and clips[1].aesthetic_score == 5.5
  assert clips[0].clip_id == "yt0_1000_3500"
  assert rejects.counts == {rj.MALFORMED_ROW: 2, rj.MISSING_FILE: 1}
  # The segment is what gets decoded: 2.5 s of a 4 fps clip = frames 4..13.
  items = list(tb.internvid_items(root, "InternVid-10M-FLT.jsonl", Rejects("x")))
  ex = tb.decode_item(items[0], tb.Sampling(4, 2.0, 32), None, Rejects("x"))
  full = video.decode_all(root / "videos" / "yt0.mp4")
  seg = video.decode_frames(root / "videos" / "yt0.mp4", 4, 2.0, 32, segment=(1.0, 3.5))
  np.testing.assert_array_equal(ex["frames"], seg)
  assert ex["alt_text"] == "a clip 0"
  assert full.shape[0] == 16


def test_msrvtt_qa_public_layout_and_bad_entries(demo_world, tmp_path):
  """MSR-VTT-QA: the demo world's test_qa.json parses fully (int video ids -> video<n>.mp4,
  question-word types); malformed entries, bad UTF-8 and missing videos are rejected by reason."""
  root = demo_world / "msrvtt"
  published = json.loads((root / "MSRVTT-QA" / "test_qa.json").read_text())
  assert published and all(set(q) == {"answer", "category_id", "id", "question", "video_id"}
                           and isinstance(q["video_id"], int) for q in published)
  rej = Rejects("msrvtt_qa")
  qs = list(readers.read_msrvtt_qa(root, "test", rejects=rej))
  assert rej.total == 0 and len(qs) == len(published) and readers.msrvtt_qa_splits(root) == ["test"]
  assert qs[0].path == root / "videos" / "all" / f"video{published[0]['video_id']}.mp4"
  assert {q.type for q in qs} <= {*readers.MSRVTT_QA_TYPES, "other"}
  bad = tmp_path / "msrvtt"
  (bad / "videos" / "all").mkdir(parents=True)
  (bad / "videos" / "all" / "video1.mp4").write_bytes(b"x" * 64)
  (bad / "MSRVTT-QA").mkdir()
  (bad / "MSRVTT-QA" / "val_qa.json").write_text(json.dumps([
      {"answer": "cat", "id": 0, "question": "who is running?", "video_id": 1},
      {"answer": "dog", "id": 1, "question": "what runs?", "video_id": 2},  # No video2.mp4.
      {"answer": "dog", "id": 2, "video_id": 1},  # No question.
      {"answer": "\ud800", "id": 3, "question": "what?", "video_id": 1},  # Lone surrogate.
      {"answer": "cat", "id": 4, "question": "why so?", "video_id": "video1"}]))
  rej = Rejects("msrvtt_qa")
  got = list(readers.read_msrvtt_qa(bad, "val", rejects=rej, check_files=True))
  assert [(q.qid, q.type, q.video_id) for q in got] == [(0, "who", "video1"),
                                                        (4, "other", "video1")]
  assert rej.counts == {rj.MISSING_FILE: 1, rj.MALFORMED_ROW: 1, rj.INVALID_UTF8: 1}, rej.counts


def test_activitynet_and_vatex_public_layouts(tmp_path):
  """ActivityNet Captions / ActivityNet-QA and VATEX in their public layouts: good entries parse
  (segments, "v_" ids, type names, VATEX spans), bad ones are rejected by reason."""
  anet = tmp_path / "anet"
  (anet / "videos").mkdir(parents=True)
  for vid in ("v_aaaaaaaaaaa", "v_bbbbbbbbbbb"):
    (anet / "videos" / f"{vid}.mp4").write_bytes(b"x" * 64)
  (anet / "val_1.json").write_text(json.dumps({
      "v_aaaaaaaaaaa": {"duration": 30.0, "timestamps": [[0.5, 10.0], [8.0, 31.5], [40.0, 45.0]],
                        "sentences": ["A man runs.", " He jumps. ", "Out of range."]},
      "v_bbbbbbbbbbb": {"duration": 12.0, "timestamps": [[0, 5]], "sentences": []},  # Counts.
      "v_ccccccccccc": {"duration": 9.0, "timestamps": [[0, 5]], "sentences": ["No video."]}}))
  rej = Rejects("anet")
  segs = list(readers.read_anet_captions(anet, "val_1", rejects=rej))
  assert [(s.key, s.segment, s.sentence) for s in segs] == [
      ("v_aaaaaaaaaaa_0", (0.5, 10.0), "A man runs."), ("v_aaaaaaaaaaa_1", (8.0, 30.0), "He jumps.")]
  assert rej.counts == {rj.MALFORMED_ROW: 2, rj.MISSING_FILE: 1}, rej.counts
  (anet / "val_q.json").write_text(json.dumps([
      {"question": "what is he doing", "question_id": "v_aaaaaaaaaaa_1", "video_name": "aaaaaaaaaaa"},
      {"question": "is it day", "question_id": "v_bbbbbbbbbbb_1", "video_name": "v_bbbbbbbbbbb"},
      {"question": "how many", "question_id": "q3", "video_name": "bbbbbbbbbbb"},  # No answer.
      {"question_id": "q4", "video_name": "bbbbbbbbbbb"}]))  # No question.
  (anet / "val_a.json").write_text(json.dumps([
      {"answer": "running", "question_id": "v_aaaaaaaaaaa_1", "type": 0},
      {"answer": "yes", "question_id": "v_bbbbbbbbbbb_1", "type": 3},
      {"answer": "two", "question_id": "q4", "type": 7}]))
  rej = Rejects("anet_qa")
  qs = list(readers.read_anet_qa(anet, "val", rejects=rej))
  assert [(q.question_id, q.video_id, q.answer, q.type) for q in qs] == [
      ("v_aaaaaaaaaaa_1", "v_aaaaaaaaaaa", "running", "motion"),
      ("v_bbbbbbbbbbb_1", "v_bbbbbbbbbbb", "yes", "yes_no")]
  assert rej.counts == {rj.MALFORMED_ROW: 2}, rej.counts

  vatex = tmp_path / "vatex"
  (vatex / "videos").mkdir(parents=True)
  (vatex / "videos" / "Ptf_2VRj-V0_000122_000132.mp4").write_bytes(b"x" * 64)
  (vatex / readers.VATEX_FILES["val"]).write_text(json.dumps([
      {"videoID": "Ptf_2VRj-V0_000122_000132", "enCap": ["A dog runs.", " ", "It barks."],
       "chCap": ["一只狗在跑。"]},
      {"videoID": "bad-id", "enCap": ["x"]},
      {"videoID": "Qtf_2VRj-V0_000001_000011", "enCap": []},
      {"videoID": "Rtf_2VRj-V0_000001_000011", "enCap": ["No clip."]}]))
  rej = Rejects("vatex")
  clips = list(readers.read_vatex(vatex, "val", rejects=rej))
  assert readers.vatex_splits(vatex) == ["val"]
  assert [(c.youtube_id, c.segment, c.captions) for c in clips] == [
      ("Ptf_2VRj-V0", (122.0, 132.0), ("A dog runs.", "It barks."))]
  assert rej.counts == {rj.MALFORMED_ROW: 2, rj.MISSING_FILE: 1}, rej.counts


def test_parsers():
  assert readers.parse_iso8601_duration("PT00H00M11S") == 11.0
  assert readers.parse_iso8601_duration("PT1H2M3.5S") == 3723.5
  assert readers.parse_timestamp("00:01:02.250") == 62.25
  for bad in ("11", "PT", "P1X"):
    with pytest.raises(ValueError):
      readers.parse_iso8601_duration(bad)
  with pytest.raises(ValueError):
    readers.parse_timestamp("1:2")


def test_bad_rows_per_format(tmp_path):
  # NExT-QA: unknown type, non-integer qid, video not in map, missing file, bad UTF-8.
  root = tmp_path / "nextqa"
  (root / "NExTVideo" / "0").mkdir(parents=True)
  (root / "NExTVideo" / "0" / "1.mp4").write_bytes(b"x")
  (root / "map_vid_vidorID.json").write_text(json.dumps({"1": "0/1", "2": "0/2"}))
  head = b"video,frame_count,width,height,question,answer,qid,type\n"
  rows = [b"1,16,64,64,what,red,0,CW\n", b"1,16,64,64,what,red,1,XX\n",
          b"1,16,64,64,what,red,one,CW\n", b"3,16,64,64,what,red,0,CW\n",
          b"2,16,64,64,what,red,0,CW\n", b"1,16,64,64,wh\xffat,red,2,CW\n",
          b"1,16,64,64,too,many,3,CW,x\n"]
  (root / "val.csv").write_bytes(head + b"".join(rows))
  r = Rejects("nextqa")
  assert [q.qid for q in readers.read_nextqa(root, "val", rejects=r)] == [0]
  assert r.counts == {rj.MALFORMED_ROW: 3, rj.UNKNOWN_VIDEO: 1, rj.MISSING_FILE: 1,
                      rj.INVALID_UTF8: 1}
  assert {rec.item for rec in r.records} == {f"line {i}" for i in range(3, 9)}
  # MSR-VTT JSON: a sentence of an unknown video, a bad UTF-8 caption, a video without caption.
  root = tmp_path / "msrvtt"
  (root / "videos" / "all").mkdir(parents=True)
  for v in ("video0", "video1"):
    (root / "videos" / "all" / f"{v}.mp4").write_bytes(b"x")
  videos = [{"category": 0, "url": "", "video_id": v, "start time": 0, "end time": 4,
             "split": "test", "id": i} for i, v in enumerate(["video0", "video1"])]
  text = json.dumps({"info": {}, "videos": videos, "sentences": [
      {"caption": "a b", "video_id": "video0", "sen_id": 0},
      {"caption": "CAPTION_X", "video_id": "video1", "sen_id": 1},
      {"caption": "c d", "video_id": "video7", "sen_id": 2}]}).encode()
  (root / "MSRVTT_data.json").write_bytes(text.replace(b"CAPTION_X", b"bad \xc3\x28 utf8"))
  r = Rejects("msrvtt")
  out = list(readers.read_msrvtt(root, "test", rejects=r))
  assert [v.video_id for v in out] == ["video0"] and out[0].captions == ("a b",)
  assert r.counts == {rj.INVALID_UTF8: 1, rj.UNKNOWN_VIDEO: 1, rj.MALFORMED_ROW: 1}
  # VidLN: bad JSON line and a narrative without description.
  root = tmp_path / "vidln"
  root.mkdir()
  (root / "v.mp4").write_bytes(b"x")
  good = {"dataset_id": "d", "video_id": "v", "video_path": "v.mp4", "annotator_id": "a",
          "actor_narratives": [{"actor_idx": 0, "actor_name": "x", "description": "moves",
                                "time_alignment": [{"utterance": "moves", "start_time": 0,
                                                    "end_time": 1}]}]}
  bad = json.loads(json.dumps(good))
  bad["actor_narratives"][0]["description"] = ""
  (root / "train.jsonl").write_text(json.dumps(good) + "\n{not json\n" + json.dumps(bad) + "\n")
  r = Rejects("vidln")
  assert len(list(readers.read_vidln(root, "train", rejects=r))) == 1
  assert r.counts == {rj.MALFORMED_ROW: 2}
  # A CSV without the format's columns is a clear error, not a reject.
  (tmp_path / "smit").mkdir()
  (tmp_path / "smit" / "train.csv").write_text("id,caption\n1,a\n")
  with pytest.raises(ValueError, match="lacks columns"):
    list(readers.read_smit(tmp_path / "smit", "train", rejects=Rejects("smit")))
  with pytest.raises(FileNotFoundError):
    list(readers.read_smit(tmp_path / "smit", "val", rejects=Rejects("smit")))


def test_rejects_jsonl_and_dedup(tmp_path):
  r = Rejects("t", tmp_path / "sub" / "rejects.jsonl")
  assert r.add("a.csv", "line 3", rj.MALFORMED_ROW, "2 fields")
  assert not r.add("a.csv", "line 3", rj.MALFORMED_ROW, "2 fields")  # second pass: not again
  assert r.add("video", "/x.mp4", rj.CORRUPT, "cannot open")
  lines = [json.loads(x) for x in (tmp_path / "sub" / "rejects.jsonl").read_text().splitlines()]
  assert lines == [{"source": "a.csv", "item": "line 3", "reason": "malformed_row",
                    "detail": "2 fields"},
                   {"source": "video", "item": "/x.mp4", "reason": "corrupt",
                    "detail": "cannot open"}]
  assert r.counts == {rj.MALFORMED_ROW: 1, rj.CORRUPT: 1} and r.total == 2


def test_rows_naming_files_outside_the_root_are_rejected(demo_world, tmp_path):
  """`../x.mp4` and an absolute path in a WebVid row, an S-MiT row and a VidLN line: each rejected
  as path_outside_root and never yielded (auto-labeling's corpus scan captions none of them)."""
  from configs import autolabel_demo  # pylint: disable=import-outside-toplevel
  from data import corpus as corpus_lib  # pylint: disable=import-outside-toplevel
  clip = next((demo_world / "webvid").rglob("*.mp4")).read_bytes()
  outside = tmp_path / "outside.mp4"  # A real file: only its place is wrong.
  outside.write_bytes(clip)
  root = tmp_path / "webvid"
  (root / "videos").mkdir(parents=True)
  (root / "videos" / "ok.mp4").write_bytes(clip)
  (root / "pool.csv").write_text(
      "videoid,contentUrl,duration,page_dir,name\n"
      "ok,videos/ok.mp4,PT4S,p,a clip\n"
      "up,../outside.mp4,PT4S,p,climbs out\n"
      f"abs,{outside},PT4S,p,absolute\n"
      "dots,videos/../../outside.mp4,PT4S,p,climbs out too\n")
  bad = Rejects("webvid")
  clips = list(readers.read_webvid(root, "pool.csv", rejects=bad, path_template="{contentUrl}"))
  assert [c.videoid for c in clips] == ["ok"]
  assert bad.counts == {rj.PATH_OUTSIDE_ROOT: 3}
  smit = tmp_path / "smit"
  smit.mkdir()
  (smit / "train.csv").write_text(f"video_id,video_path,caption\na,../outside.mp4,x\nb,{outside},y\n")
  bad = Rejects("smit")
  assert not list(readers.read_smit(smit, "train", rejects=bad, check_files=False))
  assert bad.counts == {rj.PATH_OUTSIDE_ROOT: 2}
  config = autolabel_demo.get_config(
      f"corpus.format=webvid,corpus.root={root},corpus.file=pool.csv,"
      "corpus.path_template={contentUrl}")
  corpus = corpus_lib.corpus_from_config(config.corpus)
  scan = corpus_lib.scan(corpus, unit_size=4)
  assert scan.num_clips == 1 and scan.rejects.counts == {rj.PATH_OUTSIDE_ROOT: 3}
