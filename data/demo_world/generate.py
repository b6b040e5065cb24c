"""The demo world's generator: presets, work units, the process fan-out, `generate()` and the
command line (`python -m data.demo_world`). The world itself is described in __init__.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import pathlib
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

import numpy as np

from data.demo_world import render as wr
from data.demo_world.formats import clip_record, train_spm, write_csv, write_json, write_jsonl
from data.demo_world.language import (alt_text, narratives, paraphrases, spoken_caption,
                                      still_captions)
from data.demo_world.questions import kinetics_label, label_template, nextqa_questions
from data.demo_world.scripts import sample_clip, sample_pair
from data.demo_world.vocabulary import (COLOURS, FPS, KINETICS_LABELS, MID_FRAME, NUM_FRAMES,
                                        NUMBER_WORDS, PROMPTS, SIZES, Clip)

@dataclasses.dataclass(frozen=True)
class Preset:
  """How many items each format gets. `pair_fraction` of every clip set are same-middle-frame
  pairs (rounded to whole pairs)."""
  stills_train: int
  stills_val: int
  smit_train: int
  smit_val: int
  vidln_train: int
  webvid_pool: int
  msrvtt_train: int
  msrvtt_validate: int
  msrvtt_test: int
  nextqa_val: int
  nextqa_test: int
  kinetics_test: int
  anet_test: int                      # MSR-VTT test clips also laid out as ActivityNet videos
  vatex_test: int                     # ... and (the last ones) as VATEX clips
  msrvtt_sentences: tuple[int, int]   # paraphrases per MSR-VTT clip, inclusive range
  nextqa_questions: int               # questions per NExT-QA video (at most)
  pair_fraction: float
  workers: int                        # render/encode processes


PRESETS: dict[str, Preset] = {
    # ~160 mp4 clips + 72 stills: a few seconds on one core (the test fixture's world; 24 NExT-QA
    # test videos, so that every question type is asked, CW too).
    "test": Preset(stills_train=60, stills_val=12, smit_train=24, smit_val=8, vidln_train=16,
                   webvid_pool=24, msrvtt_train=4, msrvtt_validate=2, msrvtt_test=24,
                   nextqa_val=8, nextqa_test=24, kinetics_test=22, anet_test=8, vatex_test=8,
                   msrvtt_sentences=(6, 8),
                   nextqa_questions=6, pair_fraction=0.4, workers=1),
    # ~4,000 mp4 clips + 2,400 stills: well under a minute on 2 cores.
    "demo": Preset(stills_train=2000, stills_val=200, smit_train=1200, smit_val=150,
                   vidln_train=500, webvid_pool=1200, msrvtt_train=24, msrvtt_validate=8,
                   msrvtt_test=400, nextqa_val=120, nextqa_test=280, kinetics_test=330,
                   anet_test=80, vatex_test=100, msrvtt_sentences=(6, 10), nextqa_questions=6,
                   pair_fraction=0.4, workers=2),
}


# ----------------------------------------------------------------------------------------------
# Ids.


def _unique_ints(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
  out: list[int] = []
  seen: set[int] = set()
  while len(out) < n:
    v = int(rng.integers(lo, hi))
    if v not in seen:
      seen.add(v)
      out.append(v)
  return out


_YT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _youtube_ids(rng: np.random.Generator, n: int) -> list[str]:
  out: list[str] = []
  while len(out) < n:
    s = "".join(_YT_CHARS[i] for i in rng.integers(0, len(_YT_CHARS), 11))
    if s not in out:
      out.append(s)
  return out



# ----------------------------------------------------------------------------------------------
# The generator. Work is split into units (one clip, one same-middle-frame pair, or one still),
# each drawn from its own random stream, so the world does not depend on how units are spread
# over worker processes. Workers sample, render and encode; the main process writes the text.

_FORMAT_DIRS = ("world", "stills", "smit", "vidln", "webvid", "msrvtt", "nextqa", "kinetics",
                "activitynet", "vatex", "spm")
# ActivityNet-QA's answer type (0 motion .. 8 other, data.readers.ANET_QA_TYPES) of each NExT-QA
# question type the world asks.
_ANET_QA_TYPE = {"CW": 8, "CH": 8, "TN": 2, "TC": 2, "TP": 2, "DL": 6, "DB": 3, "DC": 7, "DO": 5}


def _stream(seed: int, name: str, *index: int) -> np.random.Generator:
  """An independent random stream per (seed, clip set name, indices)."""
  return np.random.default_rng([seed, *name.encode(), *index])


@dataclasses.dataclass(frozen=True)
class _Unit:
  """One unit of work. paths: per member, relative to the output root; "{label}" is replaced by
  the clip's Kinetics label (spaces as _)."""
  set_name: str
  index: int
  pair: bool
  paths: tuple[str, ...]
  allow_stop: bool = True
  forced: str | None = None   # Kinetics label the (first) clip must show
  still: bool = False


@dataclasses.dataclass
class _Done:
  """A finished unit: its clips (with their files) and, for stills, frame and cue."""
  unit: _Unit
  clips: list[Clip]
  nbytes: int
  still: dict[str, Any] | None = None


def _plan_still(clip: Clip, rng: np.random.Generator) -> tuple[int, wr.Cue | None, dict]:
  """Frame and motion cue of a still: a cue for ~45% of stills whose clip has a cueable event."""
  cueable = [i for i, e in enumerate(clip.events)
             if e.kind in ("move", "stop", "bounce", "grow", "shrink", "change_colour")]
  if cueable and rng.random() < 0.45:
    i = int(rng.choice(cueable))
    e = clip.events[i]
    if e.kind in ("move", "stop"):
      frame, cue = int(rng.integers(e.f0 + 2, e.f1 + 1)), wr.Cue("trail", e.actor)
    elif e.kind == "bounce":
      frame, cue = int(rng.integers(e.fc + 1, e.f1 + 1)), wr.Cue("trail", e.actor)
    elif e.kind == "grow":
      frame, cue = int(rng.integers(e.f0 + 3, e.f1 + 1)), wr.Cue("rings", e.actor)
    elif e.kind == "shrink":
      frame, cue = int(rng.integers(e.f0 + 3, e.f1 + 1)), wr.Cue("halo", e.actor)
    else:
      frame, cue = e.f1, wr.Cue("old_colour", e.actor, since=e.f0)
    return frame, cue, {"frame": frame, "cue": cue.kind, "cue_actor": e.actor, "cue_event": i}
  ok = np.ones(NUM_FRAMES, bool)
  visible = np.zeros(NUM_FRAMES, bool)
  table = np.asarray(list(COLOURS.values()), np.float32)
  for t in clip.tracks:
    a, r, rgb = t.alpha[:NUM_FRAMES], t.r[:NUM_FRAMES], t.rgb[:NUM_FRAMES]
    ok &= (a < 1e-3) | (a > 1 - 1e-3)
    ok &= np.min(np.abs(r[:, None] - np.asarray(list(SIZES.values()))[None]), -1) < 1e-3
    ok &= np.min(np.abs(rgb[:, None] - table[None]).max(-1), -1) < 1e-3
    visible |= a > 0.5
  clean = np.nonzero(ok & visible)[0]
  frame = int(rng.choice(clean)) if len(clean) else MID_FRAME
  return frame, None, {"frame": frame, "cue": None}



def run_units(seed: int, out: str, units: Sequence[_Unit]) -> list[_Done]:
  """Samples, renders and writes the units (pool worker entry point)."""
  done = []
  for u in units:
    rng = _stream(seed, u.set_name, u.index)
    forced = label_template(u.forced) if u.forced is not None else None
    if u.pair:
      clips = list(sample_pair(rng, forced))
    else:
      clips = [sample_clip(rng, u.allow_stop, forced)]
    nbytes, still = 0, None
    for clip, path in zip(clips, u.paths):
      clip.file = path.format(label=kinetics_label(clip).replace(" ", "_"))
      target = os.path.join(out, clip.file)
      if u.still:
        frame, cue, still = _plan_still(clip, rng)
        nbytes += wr.write_png(wr.render_still(clip.tracks, frame, cue), target)
      else:
        nbytes += wr.encode_mp4(wr.render(clip.tracks, range(NUM_FRAMES)), target)
    done.append(_Done(u, clips, nbytes, still))
  return done


def _plan_set(rng: np.random.Generator, set_name: str, n: int, pair_fraction: float,
              paths: Sequence[str], allow_stop: bool = True, kinetics: bool = False,
              still: bool = False) -> tuple[list[_Unit], list[tuple[int, int]]]:
  """Units of a clip set and, per position 0..n-1, (unit index, member).

  round(pair_fraction * n / 2) units are same-middle-frame pairs; positions are shuffled so
  pairs and single clips interleave; paths[p] is the file of the clip at position p.
  """
  n_pairs = int(round(pair_fraction * n / 2)) if n >= 4 and not still else 0
  slots = [(k, m) for k in range(n_pairs) for m in range(2)]
  slots += [(n_pairs + k, 0) for k in range(n - 2 * n_pairs)]
  order = rng.permutation(len(slots))
  positions = [slots[j] for j in order]
  where = {slot: p for p, slot in enumerate(positions)}
  # Played backwards, a single bounce is again the same bounce, and collisions are not events.
  reversible = [lb for lb in KINETICS_LABELS if lb not in ("colliding", "bouncing")]
  units = []
  for k in range(n - n_pairs):
    pair = k < n_pairs
    forced = None
    if kinetics:
      forced = (reversible[k % len(reversible)] if pair
                else KINETICS_LABELS[k % len(KINETICS_LABELS)])
    members = 2 if pair else 1
    units.append(_Unit(set_name, k, pair, tuple(paths[where[(k, m)]] for m in range(members)),
                       allow_stop=allow_stop, forced=forced, still=still))
  return units, positions


def _spread(units: Sequence[_Unit], seed: int, out: pathlib.Path, workers: int) -> list[_Done]:
  """Runs all units, in a spawn process pool when workers > 1 (fork is unsafe once JAX or TF
  threads exist in the caller)."""
  if workers <= 1:
    return run_units(seed, str(out), units)
  n_chunks = workers * 12
  chunks = [list(units[i::n_chunks]) for i in range(n_chunks)]
  # Workers unpickle run_units and the units by this module's importable name: `python -m
  # data.demo_world` runs __main__.py, never this file, as __main__.
  with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
    futures = [ex.submit(run_units, seed, str(out), c) for c in chunks]
    return [d for f in futures for d in f.result()]


def _anet_and_vatex(out: pathlib.Path, seed: int, test_clips: Sequence[tuple[Clip, int]],
                    cfg: Preset) -> dict[str, Any]:
  """ActivityNet Captions + ActivityNet-QA over the first `cfg.anet_test` MSR-VTT test clips and
  VATEX over the last `cfg.vatex_test`, in their public layouts, with copies of those clips'
  mp4 files. Their texts come from their own random streams and stay out of the tokenizer's
  text, so nothing else in the world moves. Returns their counts for the manifest."""
  duration = NUM_FRAMES / FPS
  (out / "activitynet" / "videos").mkdir(parents=True)
  (out / "vatex" / "videos").mkdir(parents=True)

  def copy(number: int, dest: pathlib.Path) -> None:
    shutil.copyfile(out / "msrvtt" / "videos" / "all" / f"video{number}.mp4", dest)

  captions: dict[str, Any] = {}
  questions, answers = [], []
  for clip, number in test_clips[:cfg.anet_test]:
    rng = _stream(seed, "activitynet", number)
    vid = "v_" + _youtube_ids(rng, 1)[0]
    sentences = paraphrases(clip, rng, 2)  # The whole video, then its last three quarters.
    stamps = [[0.0, duration], [round(duration / 4, 2), duration]][:len(sentences)]
    captions[vid] = {"duration": duration, "timestamps": stamps, "sentences": sentences}
    for q, a, t in nextqa_questions(clip, rng, 2):
      qid = f"{vid}_{len(questions)}"
      questions.append({"question": q, "question_id": qid, "video_name": vid[2:]})
      answers.append({"answer": a, "question_id": qid, "type": _ANET_QA_TYPE[t]})
    copy(number, out / "activitynet" / "videos" / f"{vid}.mp4")
  write_json(out / "activitynet" / "val_1.json", captions)
  write_json(out / "activitynet" / "test_q.json", questions)
  write_json(out / "activitynet" / "test_a.json", answers)

  vatex = []
  for clip, number in test_clips[max(0, len(test_clips) - cfg.vatex_test):]:
    rng = _stream(seed, "vatex", number)
    t0 = int(rng.integers(0, 300))
    vid = f"{_youtube_ids(rng, 1)[0]}_{t0:06d}_{t0 + int(duration):06d}"
    vatex.append({"videoID": vid, "enCap": paraphrases(clip, rng, 10), "chCap": []})
    copy(number, out / "vatex" / "videos" / f"{vid}.mp4")
  write_json(out / "vatex" / "vatex_public_test_english_v1.1.json", vatex)
  return {"anet_videos": len(captions),
          "anet_segments": sum(len(c["sentences"]) for c in captions.values()),
          "anet_questions": len(questions), "vatex_clips": len(vatex),
          "vatex_captions": sum(len(v["enCap"]) for v in vatex)}


def generate(out_dir: str | os.PathLike, preset: str = "demo", seed: int = 0, *,
             workers: int | None = None) -> dict[str, Any]:
  """Generates the demo world under out_dir; returns (and writes to manifest.json) its summary.

  Args:
    out_dir: output root. Only the world's own sub-directories (world, stills, smit, vidln,
      webvid, msrvtt, nextqa, kinetics, activitynet, vatex, spm) and manifest.json are replaced.
    preset: "test" (~150 clips, seconds) or "demo" (~4,200 clips, < 1 min on 2 free cores).
    seed: everything (texts, pixels, mp4 bytes) is a deterministic function of it, whatever
      the number of workers.
    workers: sampling/render/encode processes; None: the preset's (test 1, demo 2), capped at
      the CPU count.
  """
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
  start = time.perf_counter()
  cfg = PRESETS[preset]
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  for d in _FORMAT_DIRS:
    shutil.rmtree(out / d, ignore_errors=True)
  (out / "manifest.json").unlink(missing_ok=True)
  n_workers = max(1, min(cfg.workers if workers is None else workers, os.cpu_count() or 1))
  frac = cfg.pair_fraction

  # 1. Plan every clip set: ids, file paths, pairs (cheap, deterministic, in this process).
  sets: dict[str, tuple[list[_Unit], list[tuple[int, int]], list[Any]]] = {}

  def plan(set_name: str, n: int, ids: Sequence[Any], paths: Sequence[str], **kw: Any) -> None:
    units, positions = _plan_set(_stream(seed, set_name), set_name, n, frac, paths, **kw)
    sets[set_name] = (units, positions, list(ids))

  first = {"train": 1, "val": 1 + cfg.stills_train}
  for subset, n in (("train", cfg.stills_train), ("val", cfg.stills_val)):
    ids = [first[subset] + k for k in range(n)]
    plan(f"stills/{subset}", n, ids, [f"stills/images/{i:06d}.png" for i in ids], still=True)
  for subset, n in (("train", cfg.smit_train), ("val", cfg.smit_val)):
    ids = [f"smit-{subset}-{k:05d}" for k in range(n)]
    plan(f"smit/{subset}", n, ids, [f"smit/videos/{i}.mp4" for i in ids])
  ids = [f"vidln-train-{k:05d}" for k in range(cfg.vidln_train)]
  plan("vidln/train", cfg.vidln_train, ids, [f"vidln/videos/{i}.mp4" for i in ids])
  ids = _unique_ints(_stream(seed, "webvid/ids"), cfg.webvid_pool, 10**6, 10**9)
  plan("webvid/pool", cfg.webvid_pool, ids, [f"webvid/videos/{i}.mp4" for i in ids])
  number = 0
  for subset, n in (("train", cfg.msrvtt_train), ("validate", cfg.msrvtt_validate),
                    ("test", cfg.msrvtt_test)):
    ids = list(range(number, number + n))
    number += n
    plan(f"msrvtt/{subset}", n, ids, [f"msrvtt/videos/all/video{i}.mp4" for i in ids])
  n_next = cfg.nextqa_val + cfg.nextqa_test
  next_ids = _unique_ints(_stream(seed, "nextqa/ids"), n_next, 2 * 10**9, 9 * 10**9)
  next_rel = [f"{k // 100:04d}/{v}" for k, v in enumerate(next_ids)]
  for subset, lo, hi in (("val", 0, cfg.nextqa_val), ("test", cfg.nextqa_val, n_next)):
    plan(f"nextqa/{subset}", hi - lo, list(zip(next_ids[lo:hi], next_rel[lo:hi])),
         [f"nextqa/NExTVideo/{r}.mp4" for r in next_rel[lo:hi]])
  krng = _stream(seed, "kinetics/ids")
  kin_ids = [(yt, int(t0), int(t0) + NUM_FRAMES // FPS) for yt, t0 in zip(
      _youtube_ids(krng, cfg.kinetics_test), krng.integers(0, 300, cfg.kinetics_test))]
  plan("kinetics/test", cfg.kinetics_test, kin_ids,
       [f"kinetics/test/{{label}}/{yt}_{t0:06d}_{t1:06d}.mp4" for yt, t0, t1 in kin_ids],
       kinetics=True)

  # 2. Sample, render and encode every unit.
  all_units = [u for units, _, _ in sets.values() for u in units]
  done = {(d.unit.set_name, d.unit.index): d for d in _spread(all_units, seed, out, n_workers)}
  pair_id = 0
  pair_of: dict[tuple[str, int], int] = {}
  for set_name, (units, _, _) in sets.items():
    for u in units:
      if u.pair:
        pair_of[(set_name, u.index)] = pair_id
        pair_id += 1

  records: list[dict[str, Any]] = []
  text: list[str] = list(PROMPTS) + list(KINETICS_LABELS) + [
      " ".join(NUMBER_WORDS), "yes no"]

  def clips_of(set_name: str, dataset: str, subset: str, split: str, id_fmt: str
               ) -> list[tuple[Clip, Any, np.random.Generator]]:
    """(clip, id, text rng) in position order, with ids and ground-truth records filled in."""
    _, positions, ids = sets[set_name]
    out_list = []
    for p, ((k, m), cid) in enumerate(zip(positions, ids)):
      d = done[(set_name, k)]
      clip = d.clips[m]
      clip.clip_id = id_fmt.format(cid)
      clip.dataset, clip.subset, clip.split = dataset, subset, split
      clip.pair_id = pair_of.get((set_name, k))
      if d.still is not None:
        clip.extra["still"] = d.still
      out_list.append((clip, cid, _stream(seed, set_name, p, 1)))
    return out_list

  def record(clip: Clip, **fields: Any) -> None:
    clip.extra.update(fields)
    records.append(clip_record(clip))
    text.append(f"generate the alt-text: {records[-1]['caption_canonical']}")

  # 3. The text of each format, in its real layout.
  stills = {}
  for subset in ("train", "val"):
    images, annotations = [], []
    for clip, image_id, rng in clips_of(f"stills/{subset}", "stills", subset, subset, "stills-"
                                        f"{subset}-{{:06d}}"):
      captions = still_captions(clip, clip.extra["still"], rng)
      images.append({"id": image_id, "file_name": f"{image_id:06d}.png",
                     "height": wr.FRAME_SIZE, "width": wr.FRAME_SIZE})
      for cap in captions:  # Annotation ids: 1.. (train), 1000001.. (val).
        annotations.append({"id": len(annotations) + 1 + (0 if subset == "train" else 10**6),
                            "image_id": image_id, "caption": cap})
      record(clip, captions=captions)
      text += captions
    stills[subset] = {"info": {"description": "viit_jax demo world stills"}, "licenses": [],
                      "images": images, "annotations": annotations}
    write_json(out / "stills" / f"captions_{subset}.json", stills[subset])

  smit_counts = {}
  for subset in ("train", "val"):
    rows = []
    for clip, cid, rng in clips_of(f"smit/{subset}", "smit", subset, subset, "{}"):
      caption = spoken_caption(clip, rng)
      rows.append((cid, f"videos/{cid}.mp4", caption))
      record(clip, caption_spoken=caption)
      text.append(caption)
    write_csv(out / "smit" / f"{subset}.csv", ("video_id", "video_path", "caption"), rows)
    smit_counts[subset] = len(rows)

  vidln_lines = []
  for clip, cid, rng in clips_of("vidln/train", "vidln", "train", "train", "{}"):
    nar = narratives(clip)
    vidln_lines.append({"dataset_id": "demo", "video_id": cid, "video_path": f"videos/{cid}.mp4",
                        "annotator_id": f"annotator_{int(rng.integers(1, 6))}",
                        "actor_narratives": nar})
    record(clip)
    text += [n["description"] for n in nar] + [n["actor_name"] for n in nar]
  write_jsonl(out / "vidln" / "train.jsonl", vidln_lines)

  rows = []
  for p, (clip, vid, rng) in enumerate(clips_of("webvid/pool", "webvid", "pool", "train",
                                                 "webvid-{}")):
    name = alt_text(clip, rng)
    page = p // 50 * 50
    rows.append((vid, f"videos/{vid}.mp4", f"PT00H00M{NUM_FRAMES // FPS:02d}S",
                 f"{page + 1:06d}_{page + 50:06d}", name))
    record(clip, alt_text=name)
    text.append(name)
  write_csv(out / "webvid" / "results_pool.csv",
             ("videoid", "contentUrl", "duration", "page_dir", "name"), rows)
  n_pool = len(rows)

  videos, sentences, jsfusion, msrvtt_qa, msrvtt_test = [], [], [], [], []
  lo_s, hi_s = cfg.msrvtt_sentences
  for subset, split in (("train", "train"), ("validate", "val"), ("test", "test")):
    for clip, number, rng in clips_of(f"msrvtt/{subset}", "msrvtt", subset, split,
                                      "msrvtt-video{}"):
      vid = f"video{number}"
      caps = paraphrases(clip, rng, int(rng.integers(lo_s, hi_s + 1)))
      start_s = round(float(rng.uniform(0, 300)), 2)
      videos.append({"category": KINETICS_LABELS.index(kinetics_label(clip)),
                     "url": f"https://www.youtube.com/watch?v={_youtube_ids(rng, 1)[0]}",
                     "video_id": vid, "start time": start_s,
                     "end time": round(start_s + NUM_FRAMES / FPS, 2), "split": subset,
                     "id": number})
      for cap in caps:
        sentences.append({"caption": cap, "video_id": vid, "sen_id": len(sentences)})
      if subset == "test":
        msrvtt_test.append((clip, number))
        k = len(jsfusion)
        jsfusion.append((k, f"ret{k}", f"msr{number}", vid, caps[0]))
        # MSR-VTT-QA over the test clips, from its own random stream (and kept out of the
        # tokenizer's text: its questions are NExT-QA's templates), so nothing else moves.
        for q, a, _ in nextqa_questions(clip, _stream(seed, "msrvtt-qa", number), 2):
          msrvtt_qa.append({"answer": a, "category_id": videos[-1]["category"],
                            "id": len(msrvtt_qa), "question": q, "video_id": number})
      record(clip, captions=caps)
      text += caps
  write_json(out / "msrvtt" / "MSRVTT_data.json",
              {"info": {"description": "viit_jax demo world, MSR-VTT layout"},
               "videos": videos, "sentences": sentences})
  write_csv(out / "msrvtt" / "MSRVTT_JSFUSION_test.csv",
             ("", "key", "vid_key", "video_id", "sentence"), jsfusion)
  write_json(out / "msrvtt" / "MSRVTT-QA" / "test_qa.json", msrvtt_qa)
  held_out = _anet_and_vatex(out, seed, msrvtt_test, cfg)

  vid_map: dict[str, str] = {}
  nextqa_counts = {}
  for subset in ("val", "test"):
    rows = []
    listed = clips_of(f"nextqa/{subset}", "nextqa", subset, "test", "nextqa-{0[0]}")
    for clip, (video, rel), rng in listed:
      vid_map[str(video)] = rel
      qas = nextqa_questions(clip, rng, cfg.nextqa_questions)
      for qid, (q, a, t) in enumerate(qas):
        rows.append((video, NUM_FRAMES, wr.FRAME_SIZE, wr.FRAME_SIZE, q, a, qid, t))
        text += [f"answer in en: {q}", a]
      record(clip, qa=[{"question": q, "answer": a, "type": t} for q, a, t in qas])
    write_csv(out / "nextqa" / f"{subset}.csv",
               ("video", "frame_count", "width", "height", "question", "answer", "qid", "type"),
               rows)
    nextqa_counts[subset] = {"videos": len(listed), "questions": len(rows)}
  write_json(out / "nextqa" / "map_vid_vidorID.json", vid_map)

  rows = []
  for clip, (yt, t0, t1), _ in clips_of("kinetics/test", "kinetics", "test", "test",
                                         "kinetics-{0[0]}"):
    label = kinetics_label(clip)
    rows.append((label, yt, t0, t1, "test"))
    record(clip, label=label)
  write_csv(out / "kinetics" / "test.csv",
             ("label", "youtube_id", "time_start", "time_end", "split"), rows)

  write_jsonl(out / "world" / "clips.jsonl", records)
  vocab = train_spm(text, out / "spm" / "demo")

  # 4. Summary.
  per_split: dict[str, int] = {}
  per_format: dict[str, dict[str, int]] = {}
  paired: dict[str, int] = {}
  for r in records:
    per_split[r["split"]] = per_split.get(r["split"], 0) + 1
    fmt = per_format.setdefault(r["dataset"], {})
    fmt[r["subset"]] = fmt.get(r["subset"], 0) + 1
    if r["pair_id"] is not None:
      paired[r["dataset"]] = paired.get(r["dataset"], 0) + 1
  files = [p for p in out.rglob("*") if p.is_file()]
  summary = {
      "preset": preset, "seed": seed, "workers": n_workers,
      "clips": {"total": len(records), "per_split": per_split, "per_format": per_format},
      "pairs": {"pairs": pair_id, "clips_in_pairs": sum(paired.values()),
                "clips_in_pairs_per_format": paired},
      "texts": {"stills_captions": sum(len(s["annotations"]) for s in stills.values()),
                "smit_captions": smit_counts, "vidln_videos": len(vidln_lines),
                "webvid_alt_texts": n_pool, "msrvtt_videos": len(videos),
                "msrvtt_sentences": len(sentences), "msrvtt_1ka_rows": len(jsfusion),
                "nextqa": nextqa_counts, **held_out, "kinetics_classes": len(KINETICS_LABELS),
                "spm_vocab_size": vocab},
      # Every mp4 file, the ActivityNet and VATEX copies of MSR-VTT test clips included.
      "files": {"mp4": sum(1 for p in files if p.suffix == ".mp4"),
                "png": sum(1 for p in files if p.suffix == ".png"),
                "media_bytes": sum(d.nbytes for d in done.values()),
                "total": len(files) + 1, "bytes": sum(p.stat().st_size for p in files)},
      "seconds": round(time.perf_counter() - start, 2),
  }
  write_json(out / "manifest.json", summary, indent=2)
  return summary


def main(argv: Sequence[str] | None = None) -> int:
  from data import demo_world  # pylint: disable=import-outside-toplevel  (its docstring: the help)
  parser = argparse.ArgumentParser(prog="python -m data.demo_world", description=demo_world.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workers", type=int, default=None,
                      help="sampling/render/encode processes (default: the preset's)")
  args = parser.parse_args(argv)
  summary = generate(args.out, preset=args.preset, seed=args.seed, workers=args.workers)
  print(json.dumps(summary, indent=2))
  c, f = summary["clips"], summary["files"]
  print(f"[demo_world] preset={args.preset} seed={args.seed}: {c['total']} clips "
        f"({', '.join(f'{k} {v}' for k, v in sorted(c['per_split'].items()))}), "
        f"{f['mp4']} mp4 + {f['png']} png, {f['total']} files, {f['bytes'] / 1e6:.1f} MB, "
        f"{summary['seconds']:.1f} s -> {args.out}", file=sys.stderr)
  return 0
