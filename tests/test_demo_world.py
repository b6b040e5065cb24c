"""The demo world: real formats, real mp4, disjoint splits, same-middle-frame pairs, determinism."""
from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import json
import pathlib
import re

import av
import numpy as np
import pytest
import sentencepiece as spm
from PIL import Image

from data import demo_world as dw

TRAIN_SIDE = {"stills", "smit", "vidln", "webvid"}
HELD_OUT = {"nextqa", "kinetics"}


def _csv(path: pathlib.Path) -> tuple[list[str], list[dict[str, str]]]:
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  header = rows[0]
  return header, [dict(zip(header, r, strict=True)) for r in rows[1:]]


def _json(path: pathlib.Path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _records(root: pathlib.Path) -> list[dict]:
  with open(root / "world" / "clips.jsonl", encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _decode(path: pathlib.Path) -> np.ndarray:
  with av.open(str(path)) as container:
    return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def records(demo_world):
  return _records(demo_world)


def test_layout_files_exist(demo_world):
  for rel in ("manifest.json", "world/clips.jsonl", "stills/captions_train.json",
              "stills/captions_val.json", "smit/train.csv", "smit/val.csv", "vidln/train.jsonl",
              "webvid/results_pool.csv", "msrvtt/MSRVTT_data.json",
              "msrvtt/MSRVTT_JSFUSION_test.csv", "nextqa/test.csv", "nextqa/val.csv",
              "nextqa/map_vid_vidorID.json", "kinetics/test.csv", "spm/demo.model",
              "spm/demo.vocab"):
    assert (demo_world / rel).is_file(), rel
    assert (demo_world / rel).stat().st_size > 0, rel


def test_manifest_matches_world(demo_world, records):
  m = _json(demo_world / "manifest.json")
  cfg = dw.PRESETS["test"]
  assert m["preset"] == "test" and m["seed"] == 0 and m["seconds"] > 0
  assert m["clips"]["total"] == len(records)
  assert sum(m["clips"]["per_split"].values()) == len(records)
  assert m["clips"]["per_format"] == {
      "stills": {"train": cfg.stills_train, "val": cfg.stills_val},
      "smit": {"train": cfg.smit_train, "val": cfg.smit_val},
      "vidln": {"train": cfg.vidln_train}, "webvid": {"pool": cfg.webvid_pool},
      "msrvtt": {"train": cfg.msrvtt_train, "validate": cfg.msrvtt_validate,
                 "test": cfg.msrvtt_test},
      "nextqa": {"val": cfg.nextqa_val, "test": cfg.nextqa_test},
      "kinetics": {"test": cfg.kinetics_test}}
  files = [p for p in demo_world.rglob("*") if p.is_file()]
  assert m["files"]["total"] == len(files)
  assert m["files"]["mp4"] == len([p for p in files if p.suffix == ".mp4"])
  assert m["files"]["png"] == len([p for p in files if p.suffix == ".png"])
  assert m["files"]["bytes"] == sum(p.stat().st_size for p in files if p.name != "manifest.json")
  # The demo preset is "thousands of clips", with a few hundred held-out MSR-VTT test videos.
  demo = dw.PRESETS["demo"]
  n_mp4 = (demo.smit_train + demo.smit_val + demo.vidln_train + demo.webvid_pool
           + demo.msrvtt_train + demo.msrvtt_validate + demo.msrvtt_test + demo.nextqa_val
           + demo.nextqa_test + demo.kinetics_test)
  assert n_mp4 >= 3000 and 200 <= demo.msrvtt_test <= 1000
  assert 20 <= cfg.msrvtt_test <= 40


def test_clip_records(demo_world, records):
  for r in records:
    assert {"clip_id", "split", "file", "actors", "events", "pair_id",
            "caption_canonical"} <= set(r)
    assert (demo_world / r["file"]).is_file(), r["file"]
    assert 1 <= len(r["actors"]) <= 3 and 1 <= len(r["events"]) <= 3
    for a in r["actors"]:
      assert a["shape"] in dw.SHAPES and a["colour"] in dw.COLOURS and a["size"] in dw.SIZES
    t_prev = -1.0
    for e in r["events"]:  # Events are strictly ordered in time.
      assert {"t0", "t1", "actor", "kind"} <= set(e) and e["kind"] in dw.EVENT_KINDS
      assert t_prev < e["t0"] < e["t1"] <= 4.0 or (e["t0"] == 0.0 and t_prev < 0)
      t_prev = e["t1"]
    assert r["caption_canonical"].endswith(".")
    if len(r["events"]) > 1:
      assert ", then " in r["caption_canonical"]
    for e in r["events"]:
      if e["kind"] == "stop":
        assert "stops because it hits the" in r["caption_canonical"]


def test_clip_from_record_gives_back_the_script(demo_world, records):
  """Tools regenerate texts from world/clips.jsonl: the script read back writes the same caption
  and the same record (but for the mp4's tracks, which records do not hold)."""
  assert dw.read_records(demo_world) == records
  clips = [r for r in records if r.get("events")]
  assert len(clips) > 100
  for r in clips:
    clip = dw.clip_from_record(r)
    assert dw.canonical_caption(clip) == r["caption_canonical"], r["clip_id"]
    back = dw.clip_record(dataclasses.replace(clip, extra={k: v for k, v in r.items()
                                                           if k not in dw.clip_record(clip)}))
    assert back == r, r["clip_id"]
    assert dw.paraphrases(clip, np.random.default_rng(0), 3)


def test_stills_coco(demo_world, records):
  cued = 0
  for subset in ("train", "val"):
    data = _json(demo_world / "stills" / f"captions_{subset}.json")
    images = {im["id"]: im for im in data["images"]}
    assert images and all({"id", "file_name", "height", "width"} <= set(im)
                          for im in data["images"])
    caps = collections.defaultdict(list)
    for a in data["annotations"]:
      assert {"id", "image_id", "caption"} <= set(a) and a["image_id"] in images
      caps[a["image_id"]].append(a["caption"])
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    for image_id, im in images.items():
      with Image.open(demo_world / "stills" / "images" / im["file_name"]) as img:
        assert img.size == (im["width"], im["height"]) == (64, 64) and img.mode == "RGB"
      assert caps[image_id]
  stills = [r for r in records if r["dataset"] == "stills"]
  assert {r["split"] for r in stills} <= {"train", "val"}  # Train side only.
  action_words = re.compile(r"\b(moving|moves|growing|grows|shrinking|shrinks|bouncing|bounces|"
                            r"turning|turns|getting|gets|going|goes|sliding|slides|traveling|"
                            r"travels|becoming|becomes|changing|changes)\b")
  for r in stills:
    if r["still"]["cue"] is not None:
      cued += 1
      assert all(action_words.search(c) for c in r["captions"]), r["captions"]
    else:
      assert not any(action_words.search(c) for c in r["captions"]), r["captions"]
  assert 0.2 * len(stills) <= cued <= 0.7 * len(stills)


def test_smit_vidln_webvid(demo_world, records):
  for subset in ("train", "val"):
    header, rows = _csv(demo_world / "smit" / f"{subset}.csv")
    assert header == ["video_id", "video_path", "caption"] and rows
    for row in rows:
      assert (demo_world / "smit" / row["video_path"]).is_file() and row["caption"]
  by_id = {r["clip_id"]: r for r in records}
  with open(demo_world / "vidln" / "train.jsonl", encoding="utf-8") as f:
    lines = [json.loads(line) for line in f]
  assert len(lines) == dw.PRESETS["test"].vidln_train
  for obj in lines:
    assert obj["dataset_id"] == "demo" and obj["annotator_id"]
    assert (demo_world / "vidln" / obj["video_path"]).is_file()
    truth = by_id[obj["video_id"]]
    assert [n["actor_idx"] for n in obj["actor_narratives"]] == list(range(len(truth["actors"])))
    text = " ".join(n["description"].lower() for n in obj["actor_narratives"])
    for n in obj["actor_narratives"]:
      assert n["actor_name"].startswith("the ") and n["description"][0].isupper()
      for u in n["time_alignment"]:
        assert {"utterance", "start_time", "end_time"} <= set(u)
        assert 0.0 <= u["start_time"] < u["end_time"] <= 4.0
      mine = [e for e in truth["events"] if e["actor"] == n["actor_idx"]]
      for e in mine:  # Word times fall inside their event.
        inside = [u for u in n["time_alignment"]
                  if e["t0"] - 1e-6 <= u["start_time"] and u["end_time"] <= e["t1"] + 1e-6]
        assert inside, (n, e)
    for i, e in enumerate(truth["events"]):  # Each event, its order and its cause are stated.
      kind_word = {"move": e.get("direction"), "grow": "grows", "shrink": "shrinks",
                   "appear": "appears", "disappear": "disappears",
                   "change_colour": f"turns {e.get('to')}", "bounce": "bounces off the",
                   "stop": "stops because it hits the"}[e["kind"]]
      assert kind_word in text, (kind_word, text)
      if i > 0:
        assert re.search(r"\b(then|after|finally)\b", text)
  header, rows = _csv(demo_world / "webvid" / "results_pool.csv")
  assert header == ["videoid", "contentUrl", "duration", "page_dir", "name"]
  assert len(rows) == dw.PRESETS["test"].webvid_pool
  for row in rows:
    assert row["videoid"].isdigit() and re.fullmatch(r"PT\d\dH\d\dM\d\dS", row["duration"])
    assert re.fullmatch(r"\d{6}_\d{6}", row["page_dir"]) and row["name"]
    assert (demo_world / "webvid" / row["contentUrl"]).is_file()


def test_msrvtt(demo_world, records):
  data = _json(demo_world / "msrvtt" / "MSRVTT_data.json")
  assert {"info", "videos", "sentences"} <= set(data)
  for v in data["videos"]:
    assert {"category", "url", "video_id", "start time", "end time", "split", "id"} <= set(v)
    assert v["video_id"] == f"video{v['id']}"
    assert (demo_world / "msrvtt" / "videos" / "all" / f"{v['video_id']}.mp4").is_file()
  assert {v["split"] for v in data["videos"]} == {"train", "validate", "test"}
  caps = collections.defaultdict(list)
  for s in data["sentences"]:
    assert {"caption", "video_id", "sen_id"} <= set(s)
    caps[s["video_id"]].append(s["caption"])
  assert len({s["sen_id"] for s in data["sentences"]}) == len(data["sentences"])
  for v in data["videos"]:  # Several distinct human-style paraphrases per clip.
    assert len(set(caps[v["video_id"]])) >= 5
  header, rows = _csv(demo_world / "msrvtt" / "MSRVTT_JSFUSION_test.csv")
  assert header == ["", "key", "vid_key", "video_id", "sentence"]
  test_ids = [v["video_id"] for v in data["videos"] if v["split"] == "test"]
  assert [r["video_id"] for r in rows] == test_ids  # One sentence per test video.
  for k, r in enumerate(rows):
    assert r[""] == str(k) and r["key"] == f"ret{k}" and r["vid_key"] == "msr" + r["video_id"][5:]
    assert r["sentence"] in caps[r["video_id"]]
  splits = {r["clip_id"]: r["split"] for r in records if r["dataset"] == "msrvtt"}
  for v in data["videos"]:
    assert splits[f"msrvtt-{v['video_id']}"] == {"validate": "val"}.get(v["split"], v["split"])


def test_nextqa_and_kinetics(demo_world, records):
  vid_map = _json(demo_world / "nextqa" / "map_vid_vidorID.json")
  types = set()
  truth = {r["clip_id"]: r for r in records}
  for subset in ("val", "test"):
    header, rows = _csv(demo_world / "nextqa" / f"{subset}.csv")
    assert header == ["video", "frame_count", "width", "height", "question", "answer", "qid",
                      "type"]
    qids = collections.defaultdict(list)
    for row in rows:
      assert (row["frame_count"], row["width"], row["height"]) == ("16", "64", "64")
      assert row["type"] in dw.NEXTQA_TYPES and row["question"].endswith("?")
      assert 1 <= len(row["answer"].split()) <= 3
      assert re.fullmatch(r"\d{4}/\d+", vid_map[row["video"]])
      assert vid_map[row["video"]].split("/")[1] == row["video"]
      assert (demo_world / "nextqa" / "NExTVideo" / f"{vid_map[row['video']]}.mp4").is_file()
      qids[row["video"]].append(int(row["qid"]))
      types.add(row["type"])
      r = truth[f"nextqa-{row['video']}"]
      if row["question"] == "how many shapes are there?":
        assert row["answer"] == dw.NUMBER_WORDS[len(r["actors"])]
      if row["type"] == "DB":
        assert row["answer"] in ("yes", "no")
    assert all(q == list(range(len(q))) for q in qids.values())
  assert types == set(dw.NEXTQA_TYPES)
  header, rows = _csv(demo_world / "kinetics" / "test.csv")
  assert header == ["label", "youtube_id", "time_start", "time_end", "split"]
  assert len(rows) == dw.PRESETS["test"].kinetics_test
  assert len({r["label"] for r in rows}) >= 8
  for r in rows:
    assert r["label"] in dw.KINETICS_LABELS and r["split"] == "test"
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", r["youtube_id"])
    path = (demo_world / "kinetics" / "test" / r["label"].replace(" ", "_")
            / f"{r['youtube_id']}_{int(r['time_start']):06d}_{int(r['time_end']):06d}.mp4")
    assert path.is_file()


def test_every_mp4_decodes(demo_world):
  paths = sorted(demo_world.rglob("*.mp4"))
  assert len(paths) == _json(demo_world / "manifest.json")["files"]["mp4"] >= 100
  for p in paths:
    with av.open(str(p)) as container:
      stream = container.streams.video[0]
      assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
      assert stream.average_rate == 4
      frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 16 and all(f.shape == (64, 64, 3) for f in frames), p


def test_colours_round_trip(demo_world, records):
  """Decoded actor interiors keep their colour (within a few levels)."""
  r = next(r for r in records if r["dataset"] == "kinetics" and r["label"] == "moving left")
  frames = _decode(demo_world / r["file"])
  colours = {a["colour"] for a in r["actors"]}
  pixels = frames.reshape(-1, 3).astype(int)
  for c in colours:
    d = np.abs(pixels - np.asarray(dw.COLOURS[c])).max(-1)
    assert (d <= 6).sum() > 100, c  # Many pixels decode to the exact colour, +-6.


def test_train_test_disjoint(demo_world, records):
  train = [r for r in records if r["split"] in ("train", "val")]
  test = [r for r in records if r["split"] == "test"]
  assert len(test) >= 50
  assert {r["dataset"] for r in test} == {"msrvtt", "nextqa", "kinetics"}
  assert all(r["split"] != "test" for r in records if r["dataset"] in TRAIN_SIDE)
  assert all(r["split"] == "test" for r in records if r["dataset"] in HELD_OUT)
  assert not {r["clip_id"] for r in train} & {r["clip_id"] for r in test}
  assert not {r["file"] for r in train} & {r["file"] for r in test}
  assert len({r["clip_id"] for r in records}) == len(records)

  def digest(r):
    return hashlib.md5((demo_world / r["file"]).read_bytes()).hexdigest()

  train_hashes = {digest(r) for r in train if r["file"].endswith(".mp4")}
  assert not train_hashes & {digest(r) for r in test}


def test_same_middle_frame_pairs(demo_world, records):
  pairs = collections.defaultdict(list)
  for r in records:
    if r["pair_id"] is not None:
      pairs[r["pair_id"]].append(r)
  assert pairs and all(len(v) == 2 for v in pairs.values())
  for a, b in pairs.values():
    assert (a["dataset"], a["subset"], a["split"]) == (b["dataset"], b["subset"], b["split"])
  per_set = collections.Counter((r["dataset"], r["subset"]) for r in records
                                if r["dataset"] != "stills")
  paired = collections.Counter((r["dataset"], r["subset"]) for r in records
                               if r["pair_id"] is not None)
  for key, n in per_set.items():
    if n >= 6:
      assert 0.3 <= paired[key] / n <= 0.5, (key, paired[key], n)
  sentences = collections.defaultdict(set)
  for s in _json(demo_world / "msrvtt" / "MSRVTT_data.json")["sentences"]:
    sentences[s["video_id"]].add(s["caption"])
  mid_diffs, motion_diffs = [], []
  for a, b in pairs.values():
    assert a["caption_canonical"] != b["caption_canonical"]
    if a["dataset"] == "msrvtt":
      assert not sentences[a["file"].split("/")[-1][:-4]] & sentences[b["file"].split("/")[-1][:-4]]
    fa, fb = _decode(demo_world / a["file"]), _decode(demo_world / b["file"])
    diff = np.abs(fa.astype(np.float32) - fb.astype(np.float32)).mean(axis=(1, 2, 3))
    mid_diffs.append(diff[dw.MID_FRAME])
    motion_diffs.append(diff.max())
  mid_diffs, motion_diffs = np.asarray(mid_diffs), np.asarray(motion_diffs)
  assert mid_diffs.max() < 1.5, mid_diffs  # Same picture up to codec noise ...
  assert np.all(motion_diffs > mid_diffs + 1.0), (motion_diffs, mid_diffs)  # ... not same clip.
  # Unrelated clips' middle frames differ far more than a pair's.
  clips = [r for r in records if r["dataset"] == "msrvtt" and r["pair_id"] is None][:12]
  mids = [_decode(demo_world / r["file"])[dw.MID_FRAME].astype(np.float32) for r in clips]
  other = [np.abs(x - y).mean() for i, x in enumerate(mids) for y in mids[i + 1:]]
  assert np.median(other) > 10 * max(mid_diffs.max(), 0.1)


def test_spm(demo_world, records):
  sp = spm.SentencePieceProcessor(model_file=str(demo_world / "spm" / "demo.model"))
  assert (sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id()) == (0, 1, 2, 3)
  assert 100 <= sp.get_piece_size() <= 1000
  with open(demo_world / "spm" / "demo.vocab", encoding="utf-8") as f:
    assert f.read().count("\t") == sp.get_piece_size()
  assert sp.encode("A BIG Red Circle GROWS.") == sp.encode("a big red circle grows.")
  for r in records[::7]:
    for text in (r["caption_canonical"], "Generate the alt-text:", "Answer in en: why?"):
      assert sp.unk_id() not in sp.encode(text), text
  assert sp.decode(sp.encode("what does the circle do after moving left?")) == (
      "what does the circle do after moving left?")


def test_spoken_errors_and_alt_text_noise():
  """~10% of spoken words are dropped or swapped; ~15% of alt-texts name a wrong colour/shape."""
  rng = np.random.default_rng(123)
  clips = [dw.sample_clip(rng, allow_stop=True) for _ in range(150)]
  errors = words = 0
  wrong = motion = 0
  for k, clip in enumerate(clips):
    clean = dw.spoken_caption(clip, np.random.default_rng(k), error_rate=0.0).split()
    noisy = dw.spoken_caption(clip, np.random.default_rng(k), error_rate=0.1).split()
    # Word-level edit distance.
    d = np.arange(len(noisy) + 1)
    for i, w in enumerate(clean, 1):
      prev, d[0] = d.copy(), i
      for j, v in enumerate(noisy, 1):
        d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (w != v))
    errors += int(d[-1])
    words += len(clean)
    alt = dw.alt_text(clip, np.random.default_rng(k))
    truth = {(c, s) for _, c, s in dw.appearance(clip, dw.MID_FRAME)}
    named = re.findall(r"(red|green|blue|yellow|purple) (circle|square|triangle|diamond)", alt)
    wrong += any(n not in truth for n in named)
    motion += bool(re.search(r"\bmoving (left|right|up|down)\b", alt))
  assert 0.05 <= errors / words <= 0.15, errors / words
  assert 0.05 <= wrong / len(clips) <= 0.3, wrong
  assert motion / len(clips) <= 0.2


def test_contact_distance_touches():
  from data.demo_world import render as wr  # pylint: disable=import-outside-toplevel
  g = np.arange(-40, 40, 0.1, dtype=np.float32)
  gx, gy = np.meshgrid(g, g)
  for mover, target, direction in (("triangle", "square", "right"), ("circle", "diamond", "up"),
                                   ("square", "triangle", "down")):
    s = dw.contact_distance(mover, 12.0, target, 8.0, direction)
    ux, uy = dw.DIRECTIONS[direction]
    inside_t = wr.sdf(target, gx, gy, 8.0) <= 0
    for gap, overlap in ((0.3, False), (-0.3, True)):
      m = wr.sdf(mover, gx + (s + gap) * ux, gy + (s + gap) * uy, 12.0) <= 0
      assert bool(np.any(m & inside_t)) == overlap, (mover, target, direction, gap)


def _every_event() -> list[dw.Event]:
  """One event of every kind and variant (direction, wall), for actor 0 (actor 1: the target)."""
  events = [dw.Event("move", 0, 0, 5, direction=d) for d in dw.DIRECTIONS]
  events += [dw.Event(k, 0, 0, 5) for k in ("grow", "shrink", "appear", "disappear")]
  events += [dw.Event("change_colour", 0, 0, 5, src="red", dst="green")]
  events += [dw.Event("bounce", 0, 0, 8, wall=w, direction=d, fc=4) for w, d in dw.WALLS.items()]
  events += [dw.Event("stop", 0, 0, 5, direction=d, target=1) for d in dw.DIRECTIONS]
  assert {e.kind for e in events} == set(dw.EVENT_KINDS)
  return events


def _one_event_clip(e: dw.Event) -> dw.Clip:
  actors = [dw.Actor("circle", "red", "small", e.kind != "appear"),
            dw.Actor("square", "blue", "big", True)]
  return dw.Clip(actors, [e], ())


def test_event_verbs_open_the_canonical_captions():
  """EVENT_VERBS[kind] is the verb of the canonical caption of a clip with that one event."""
  verbs: dict[str, set[str]] = collections.defaultdict(set)
  for e in _every_event():
    words = dw.canonical_caption(_one_event_clip(e)).rstrip(".").split()
    assert words[:4] == ["a", "small", "red", "circle"], words
    verbs[e.kind].add(words[4])
  assert verbs.pop("stop") == {dw.EVENT_VERBS["move"]}  # "moves left and stops because ..."
  assert verbs == {k: {v} for k, v in dw.EVENT_VERBS.items()}
  assert list(dw.EVENT_VERBS) == [k for k in dw.EVENT_KINDS if k != "stop"]


def test_direction_words_name_the_directions_of_moves_and_bounces():
  """Every direction word in a move, stop or bounce phrase of the writer names its direction."""
  from data.demo_world import language  # pylint: disable=import-outside-toplevel
  assert dw.DIRECTION_WORDS == ({d: d for d in dw.DIRECTIONS} | dict(dw.WALLS)
                                | {f"{d}wards": d for d in dw.DIRECTIONS})
  for e in _every_event():
    if e.kind not in ("move", "stop", "bounce"):
      continue
    for variant in language.event_variants(_one_event_clip(e), 0):
      for form in ("present", "gerund"):
        named = [dw.DIRECTION_WORDS[w] for w in language.conj(variant, form).split()
                 if w in dw.DIRECTION_WORDS]
        assert set(named) <= {e.direction}, (e, variant)
        assert named or e.kind == "bounce", (e, variant)  # "bounces off the wall": none


def test_deterministic(demo_world, tmp_path):
  """Same seed: identical files, whatever the number of workers; another seed: other texts."""
  same = dw.generate(tmp_path / "same", preset="test", seed=0, workers=2)
  assert same["clips"] == _json(demo_world / "manifest.json")["clips"]
  ref = {p.relative_to(demo_world): p.read_bytes() for p in demo_world.rglob("*")
         if p.is_file() and p.name != "manifest.json"}
  got = {p.relative_to(tmp_path / "same"): p.read_bytes() for p in (tmp_path / "same").rglob("*")
         if p.is_file() and p.name != "manifest.json"}
  assert ref.keys() == got.keys()
  assert [k for k in ref if ref[k] != got[k]] == []
  dw.generate(tmp_path / "other", preset="test", seed=1)
  for rel in ("world/clips.jsonl", "smit/train.csv", "msrvtt/MSRVTT_data.json",
              "nextqa/test.csv", "webvid/results_pool.csv"):
    assert (tmp_path / "other" / rel).read_bytes() != ref[pathlib.Path(rel)], rel
  other = {r["caption_canonical"] for r in _records(tmp_path / "other")}
  mine = {r["caption_canonical"] for r in _records(demo_world)}
  assert len(other - mine) > len(other) // 2
