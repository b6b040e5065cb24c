"""The demo video world: a procedural world whose captions and answers need time.

    python -m data.demo_world --out=DIR --preset=test|demo --seed=N [--workers=K]

Coloured shapes (circle, square, triangle, diamond; red, green, blue, yellow, purple; small or
big) on a plain grey background; 1-3 actors and 1-3 events per clip (mostly one of each, see
ACTORS_P and EVENTS_P), strictly in order: move left/right/up/down, grow, shrink, appear,
disappear, change colour, bounce off a wall, and "stop because it hits another actor" (a cause);
mostly changes of colour, size and presence, which the demo models can learn to see
(EVENT_WEIGHTS). Clips are 16 frames of 64x64 RGB at 4 fps (4 s), encoded as real H.264 mp4 with
PyAV.

Same-middle-frame pairs: a pair is one simulated clip and the same clip played backwards,
both pivoting on frame 8, so frame 8 is identical while every event is inverted (moves left <->
moves right, grows <-> shrinks, appears <-> disappears, turns blue <-> turns red) and their order
is reversed. A model that sees one frame cannot tell their captions apart. `pair_fraction` of
every split (40%) are such pairs; world/clips.jsonl records `pair_id`.

Every output is in the layout of a real public data set (see /work/contract.md):

    DIR/manifest.json    preset, seed, counts per split and format, files, bytes, seconds
    DIR/world/clips.jsonl  ground truth per clip (not for model use)
    DIR/stills/          COCO captions (images/<id>.png, captions_train.json, captions_val.json)
    DIR/smit/            S-MiT-style spoken captions (videos/, train.csv, val.csv)
    DIR/vidln/           VidLN-style actor narratives with word times (videos/, train.jsonl)
    DIR/webvid/          unlabeled pool with alt-text (videos/, results_pool.csv)
    DIR/msrvtt/          MSR-VTT (MSRVTT_data.json, MSRVTT_JSFUSION_test.csv, videos/all/)
    DIR/nextqa/          NExT-QA open-ended (val.csv, test.csv, map_vid_vidorID.json, NExTVideo/)
    DIR/kinetics/        Kinetics-style action labels (test.csv, test/<label>/<id>_<s>_<e>.mp4)
    DIR/spm/             demo.model, demo.vocab: SentencePiece trained on all the world's text

Presets (see PRESETS): "test" has 156 mp4 clips + 72 stills (~1.2 MB, a few seconds on one
core; the test fixture's world); "demo" has 4,212 mp4 clips + 2,200 stills (6,412 clips with
400 MSR-VTT 1k-A test videos, 400 NExT-QA videos with ~2,300 questions; ~29 MB) and costs ~34
CPU-seconds in all, i.e. ~20 s on two free cores (measured 92 s wall on a 2-core machine at
load 8.5).

Stills, S-MiT, VidLN and the pool are train side; MSR-VTT test, NExT-QA and Kinetics are
held-out clips drawn from other random streams (disjoint clip ids and files). Everything is a
deterministic function of the seed (texts and mp4 bytes alike).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import io
import json
import multiprocessing
import os
import pathlib
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Mapping, Sequence

import numpy as np

from data import world_render as wr

# ----------------------------------------------------------------------------------------------
# The world's vocabulary and physics.

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 90, 225),
    "yellow": (235, 195, 20), "purple": (150, 60, 200)}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 8.0, "big": 12.0}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
WALLS = {"left": "left", "right": "right", "top": "up", "bottom": "down"}  # wall -> direction
EVENT_KINDS = ("move", "grow", "shrink", "appear", "disappear", "change_colour", "bounce", "stop")
# Sampling weight of each next event (per actor; a kind's weight is split over its variants). The
# demo's small VLM learns to read an appearance change in time order from the concatenated frame
# tokens but not a motion (viit_jax.benchmarks.demo_perception, 600 LM steps on 4 worlds' clips:
# "it turns COLOUR" 98% held-out, "it moves DIR" 30-31% = chance, also with the ViT training), so
# the world's events are mostly changes of colour, size and presence, and motion is the rarer part
# (the weights were move 0.30, grow/shrink 0.14, appear/disappear 0.06, change_colour 0.12, bounce
# 0.15, stop 0.30; README: "What `make demo` shows today").
EVENT_WEIGHTS = {"move": 0.08, "grow": 0.20, "shrink": 0.20, "appear": 0.10, "disappear": 0.10,
                 "change_colour": 0.40, "bounce": 0.05, "stop": 0.08}
# Share of clips with 1, 2 and 3 actors and with 1, 2 and 3 events: mostly one actor doing one
# thing. The demo VLM learns to name a one-event clip's event in a few hundred LM steps
# (demo_perception's event_vlm probe: 81% held-out after 300 steps, 86% after 500, majority 36%),
# but not in crowded clips: with (0.3, 0.4, 0.3) for both, its pool captions fell back on the
# prior ("a small green circle is changing to purple") and the dual encoder trained on them lost
# to the frame-caption one on every seed; with (0.6, 0.3, 0.1) it wins on every seed, by 0.5-1.0
# R@1 with phase 2 at lr 1e-3, by 1.5-3.25 at 3e-3 (README: "What `make demo` shows today").
ACTORS_P = (0.6, 0.3, 0.1)
EVENTS_P = (0.6, 0.3, 0.1)
KINETICS_ACTORS_P = (0.3, 0.4, 0.3)  # Kinetics-style clips: one labelled action, 0-2 bystanders.
INVERSE_KIND = {"grow": "shrink", "shrink": "grow", "appear": "disappear",
                "disappear": "appear", "move": "move", "change_colour": "change_colour",
                "bounce": "bounce"}

NUM_FRAMES = 16
FPS = wr.FPS
MID_FRAME = 8
SIM_FRAMES = NUM_FRAMES + 1  # Frames 0..16: a pair partner shows frames 16..1 of its twin.
LAST = SIM_FRAMES - 1
FRAME_MAX = wr.FRAME_SIZE - 1

KINETICS_LABELS = ("moving left", "moving right", "moving up", "moving down", "growing",
                   "shrinking", "appearing", "disappearing", "changing colour", "bouncing",
                   "colliding")
PROMPTS = ("generate the alt-text:", "Generate the alt-text:", "answer in en:", "Answer in en:")
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
NEXTQA_TYPES = ("CW", "CH", "TN", "TC", "DL", "DB", "DC", "DO")


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
  msrvtt_sentences: tuple[int, int]   # paraphrases per MSR-VTT clip, inclusive range
  nextqa_questions: int               # questions per NExT-QA video (at most)
  pair_fraction: float
  workers: int                        # render/encode processes


PRESETS: dict[str, Preset] = {
    # ~160 mp4 clips + 72 stills: a few seconds on one core (the test fixture's world; 24 NExT-QA
    # test videos, so that every question type is asked, CW too).
    "test": Preset(stills_train=60, stills_val=12, smit_train=24, smit_val=8, vidln_train=16,
                   webvid_pool=24, msrvtt_train=4, msrvtt_validate=2, msrvtt_test=24,
                   nextqa_val=8, nextqa_test=24, kinetics_test=22, msrvtt_sentences=(6, 8),
                   nextqa_questions=6, pair_fraction=0.4, workers=1),
    # ~4,000 mp4 clips + 2,400 stills: well under a minute on 2 cores.
    "demo": Preset(stills_train=2000, stills_val=200, smit_train=1200, smit_val=150,
                   vidln_train=500, webvid_pool=1200, msrvtt_train=24, msrvtt_validate=8,
                   msrvtt_test=400, nextqa_val=120, nextqa_test=280, kinetics_test=330,
                   msrvtt_sentences=(6, 10), nextqa_questions=6, pair_fraction=0.4, workers=2),
}


@dataclasses.dataclass(frozen=True)
class Actor:
  """An actor's attributes at the first frame of its clip."""
  shape: str
  colour: str
  size: str
  visible: bool


@dataclasses.dataclass(frozen=True)
class Event:
  """One event on frames [f0, f1] of the simulated timeline (0..16, 4 fps).

  kind-specific fields: direction (move, stop; bounce: direction towards the wall), wall and
  fc (contact frame) for bounce, src/dst colours for change_colour, target actor for stop.
  """
  kind: str
  actor: int
  f0: int
  f1: int
  direction: str | None = None
  wall: str | None = None
  fc: int | None = None
  src: str | None = None
  dst: str | None = None
  target: int | None = None
  amount: float = 0.0  # pixels travelled (move, stop) or speed (bounce)

  def key(self) -> tuple:
    return (self.kind, self.actor, self.direction, self.wall, self.dst, self.target)


@dataclasses.dataclass
class Clip:
  """A clip's script, its simulated tracks (SIM_FRAMES long) and where it goes."""
  actors: list[Actor]
  events: list[Event]
  tracks: tuple[wr.Track, ...]
  pair_id: int | None = None
  clip_id: str = ""
  dataset: str = ""
  subset: str = ""
  split: str = ""
  file: str = ""
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Scripts: which actor does what, in which order.


@dataclasses.dataclass
class _ActorState:
  colour: str
  size: str
  visible: bool
  n_events: int = 0
  moved: bool = False
  done: bool = False
  target: bool = False


def _options(states: list[_ActorState], done_keys: set, allow_stop: bool, has_stop: bool
             ) -> list[tuple[float, Event]]:
  """Every event that may come next, with its sampling weight (timing filled in later)."""
  opts: list[tuple[float, Event]] = []
  used_colours = {s.colour for s in states}
  for a, s in enumerate(states):
    if s.done or s.target:
      continue
    cands: list[tuple[float, Event]] = []
    for d in DIRECTIONS:
      cands.append((EVENT_WEIGHTS["move"] / 4, Event("move", a, 0, 0, direction=d)))
    size_kind = "grow" if s.size == "small" else "shrink"
    cands.append((EVENT_WEIGHTS[size_kind], Event(size_kind, a, 0, 0)))
    if s.n_events == 0:
      cands.append((EVENT_WEIGHTS["appear"], Event("appear", a, 0, 0)))
    if s.visible:
      cands.append((EVENT_WEIGHTS["disappear"], Event("disappear", a, 0, 0)))
    free = [c for c in COLOURS if c not in used_colours]
    for c in free:
      cands.append((EVENT_WEIGHTS["change_colour"] / len(free),
                    Event("change_colour", a, 0, 0, src=s.colour, dst=c)))
    for w, d in WALLS.items():
      cands.append((EVENT_WEIGHTS["bounce"] / 4, Event("bounce", a, 0, 0, wall=w, direction=d)))
    if allow_stop and not has_stop and not s.moved:
      targets = [b for b, t in enumerate(states) if b != a and t.n_events == 0 and t.visible]
      for b in targets:
        for d in DIRECTIONS:
          cands.append((EVENT_WEIGHTS["stop"] / 4 / len(targets),
                        Event("stop", a, 0, 0, direction=d, target=b)))
    for w, e in cands:
      if e.key() not in done_keys:
        opts.append((w, e))
  return opts


def _apply(states: list[_ActorState], e: Event) -> None:
  s = states[e.actor]
  if e.kind == "appear":
    s.visible = True
  elif e.kind == "disappear":
    s.visible, s.done = False, True
  elif e.kind == "grow":
    s.size = "big"
  elif e.kind == "shrink":
    s.size = "small"
  elif e.kind == "change_colour":
    s.colour = e.dst
  elif e.kind in ("move", "bounce"):
    s.moved = True
  elif e.kind == "stop":
    s.moved, s.done = True, True
    states[e.target].target = True
  s.n_events += 1


def _min_frames(kind: str, n_events: int) -> int:
  base = {"bounce": 6, "stop": 4}.get(kind, 3)
  return max(base, 5) if n_events == 1 else base


def _sample_script(rng: np.random.Generator, n_actors: int, n_events: int, allow_stop: bool,
                   forced: Event | None) -> tuple[list[Actor], list[Event]] | None:
  """Actors and timed events (amounts included), or None when the draw is infeasible.

  forced: a template (kind, and direction for moves) the single event must match.
  """
  shapes = rng.choice(SHAPES, n_actors, replace=False)
  colours = rng.choice(list(COLOURS), n_actors, replace=False)
  sizes = rng.choice(list(SIZES), n_actors)
  states = [_ActorState(str(c), str(z), True) for c, z in zip(colours, sizes)]
  initial_visible = [True] * n_actors
  events: list[Event] = []
  done_keys: set = set()
  for _ in range(n_events):
    opts = _options(states, done_keys, allow_stop, any(e.kind == "stop" for e in events))
    if forced is not None:
      opts = [(w, e) for w, e in opts if e.kind == forced.kind
              and (forced.direction is None or e.direction == forced.direction)]
    if not opts:
      return None
    w = np.asarray([o[0] for o in opts])
    e = opts[rng.choice(len(opts), p=w / w.sum())][1]
    if e.kind == "appear":
      initial_visible[e.actor] = False
    events.append(e)
    done_keys.add(e.key())
    _apply(states, e)
  actors = [Actor(str(s), str(c), str(z), v)
            for s, c, z, v in zip(shapes, colours, sizes, initial_visible)]
  # Timing: durations >= the kind's minimum, gaps >= 1 between events, all within 0..16.
  mins = np.asarray([_min_frames(e.kind, n_events) for e in events])
  slack = LAST - int(mins.sum()) - (n_events - 1)
  if slack < 0:
    return None
  p = rng.dirichlet([2.0] * n_events + [1.0] * (n_events + 1))
  extra = rng.multinomial(slack, p)
  durations = mins + extra[:n_events]
  gaps = extra[n_events:]
  timed = []
  f = int(gaps[0])
  for i, e in enumerate(events):
    f0, f1 = f, f + int(durations[i])
    d = f1 - f0
    if e.kind in ("move", "stop"):
      amount = float(np.clip(rng.uniform(1.5, 3.0) * d, 8.0, 30.0))
      timed.append(dataclasses.replace(e, f0=f0, f1=f1, amount=amount))
    elif e.kind == "bounce":
      k = int(rng.integers(2, d - 1))  # Frames towards the wall; >= 2 frames back out.
      speed = float(rng.uniform(1.5, min(3.0, 24.0 / max(k, d - k))))
      timed.append(dataclasses.replace(e, f0=f0, f1=f1, fc=f0 + k, amount=speed))
    else:
      timed.append(dataclasses.replace(e, f0=f0, f1=f1))
    f = f1 + 1 + int(gaps[i + 1])
  return actors, timed


# ----------------------------------------------------------------------------------------------
# Simulation: tracks from a script, placing actors so that they stay inside and never overlap.

_FRAMES = np.arange(SIM_FRAMES, dtype=np.float32)


def _ramp(f0: int, f1: int) -> np.ndarray:
  """float32[SIM_FRAMES]: 0 before f0, linear to 1 at f1, 1 after."""
  return np.clip((_FRAMES - f0) / max(f1 - f0, 1), 0.0, 1.0)


def _kinematics(actor: Actor, events: Sequence[Event]) -> dict[str, np.ndarray]:
  """Displacement from the start position, radius, opacity and colour per frame of one actor."""
  dx = np.zeros(SIM_FRAMES, np.float32)
  dy = np.zeros(SIM_FRAMES, np.float32)
  r = np.full(SIM_FRAMES, SIZES[actor.size], np.float32)
  alpha = np.full(SIM_FRAMES, 1.0 if actor.visible else 0.0, np.float32)
  rgb = np.tile(np.asarray(COLOURS[actor.colour], np.float32), (SIM_FRAMES, 1))
  for e in events:
    ramp = _ramp(e.f0, e.f1)
    if e.kind in ("move", "stop"):
      ux, uy = DIRECTIONS[e.direction]
      dx += ux * e.amount * ramp
      dy += uy * e.amount * ramp
    elif e.kind == "bounce":
      ux, uy = DIRECTIONS[e.direction]
      path = e.amount * (np.clip(_FRAMES - e.f0, 0, e.fc - e.f0)
                         - np.clip(_FRAMES - e.fc, 0, e.f1 - e.fc))
      dx += ux * path
      dy += uy * path
    elif e.kind in ("grow", "shrink"):
      sign = 1.0 if e.kind == "grow" else -1.0
      r += sign * (SIZES["big"] - SIZES["small"]) * ramp
    elif e.kind == "appear":
      alpha = ramp.copy()
    elif e.kind == "disappear":
      alpha = alpha * (1.0 - ramp)
    elif e.kind == "change_colour":
      delta = np.asarray(COLOURS[e.dst], np.float32) - np.asarray(COLOURS[e.src], np.float32)
      rgb = rgb + delta[None] * ramp[:, None]
  return {"dx": dx, "dy": dy, "r": r, "alpha": alpha, "rgb": rgb}


@functools.lru_cache(maxsize=None)
def contact_distance(mover: str, r_mover: float, target: str, r_target: float,
                     direction: str) -> float:
  """Centre distance at which `mover`, approaching `target` along `direction`, first touches it.

  Found numerically from the shapes' signed distance functions on a 0.2 px grid.
  """
  ux, uy = DIRECTIONS[direction]
  g = np.arange(-32.0, 32.0, 0.2, dtype=np.float32)
  gx, gy = np.meshgrid(g, g)
  inside_t = wr.sdf(target, gx, gy, r_target) <= 0
  px, py = gx[inside_t], gy[inside_t]

  def overlaps(s: float) -> bool:  # mover centred at -s * u from the target's centre
    return bool(np.any(wr.sdf(mover, px + s * ux, py + s * uy, r_mover) <= 0))

  lo, hi = 0.0, float(wr.bounding_radius(mover, r_mover) + wr.bounding_radius(target, r_target))
  for _ in range(24):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if overlaps(mid) else (lo, mid)
  return hi


def _interval(shape: str, r: np.ndarray, d: np.ndarray, axis: int) -> tuple[float, float]:
  """Start coordinates on `axis` (0: x, 1: y) that keep the shape inside the frame throughout."""
  left, right, top, bottom = wr.extents(shape, r)
  lo_ext, hi_ext = (left, right) if axis == 0 else (top, bottom)
  return float(np.max(lo_ext - d)), float(np.min(FRAME_MAX - hi_ext - d))


def _place(rng: np.random.Generator, actors: list[Actor], events: list[Event]
           ) -> tuple[wr.Track, ...] | None:
  """Start positions satisfying walls, contacts and separation; None if none found."""
  n = len(actors)
  kin = [_kinematics(a, [e for e in events if e.actor == i]) for i, a in enumerate(actors)]
  box = []
  for a, k in zip(actors, kin):
    bx, by = _interval(a.shape, k["r"], k["dx"], 0), _interval(a.shape, k["r"], k["dy"], 1)
    if bx[0] > bx[1] or by[0] > by[1]:
      return None
    box.append((bx, by))
  stop = next((e for e in events if e.kind == "stop"), None)
  bounces = {e.actor: e for e in events if e.kind == "bounce"}
  for _ in range(40):
    pos = [[float(rng.uniform(*box[i][0])), float(rng.uniform(*box[i][1]))] for i in range(n)]
    for i, e in bounces.items():
      a, k = actors[i], kin[i]
      left, right, top, bottom = (float(v) for v in wr.extents(a.shape, k["r"][e.fc]))
      if e.wall == "left":
        pos[i][0] = left - float(k["dx"][e.fc])
      elif e.wall == "right":
        pos[i][0] = FRAME_MAX - right - float(k["dx"][e.fc])
      elif e.wall == "top":
        pos[i][1] = top - float(k["dy"][e.fc])
      else:
        pos[i][1] = FRAME_MAX - bottom - float(k["dy"][e.fc])
    if stop is not None:
      m, t = stop.actor, stop.target
      ux, uy = DIRECTIONS[stop.direction]
      s = contact_distance(actors[m].shape, float(kin[m]["r"][stop.f1]), actors[t].shape,
                           float(kin[t]["r"][0]), stop.direction) + 0.5
      pos[m][0] = pos[t][0] - ux * s - float(kin[m]["dx"][stop.f1])
      pos[m][1] = pos[t][1] - uy * s - float(kin[m]["dy"][stop.f1])
    ok = all(box[i][0][0] - 1e-3 <= pos[i][0] <= box[i][0][1] + 1e-3
             and box[i][1][0] - 1e-3 <= pos[i][1] <= box[i][1][1] + 1e-3 for i in range(n))
    if ok:
      for i in range(n):
        for j in range(i + 1, n):
          if stop is not None and {i, j} == {stop.actor, stop.target}:
            continue  # Approaches head-on and stops at contact (distance above).
          both = (kin[i]["alpha"] > 0.01) & (kin[j]["alpha"] > 0.01)
          dist = np.hypot(pos[i][0] + kin[i]["dx"] - pos[j][0] - kin[j]["dx"],
                          pos[i][1] + kin[i]["dy"] - pos[j][1] - kin[j]["dy"])
          need = (wr.bounding_radius(actors[i].shape, kin[i]["r"])
                  + wr.bounding_radius(actors[j].shape, kin[j]["r"]) + 1.0)
          if np.any(both & (dist < need)):
            ok = False
    if ok:
      return tuple(
          wr.Track(a.shape, (pos[i][0] + kin[i]["dx"]).astype(np.float32),
                   (pos[i][1] + kin[i]["dy"]).astype(np.float32), kin[i]["r"],
                   kin[i]["alpha"], kin[i]["rgb"].astype(np.float32))
          for i, a in enumerate(actors))
  return None


def _reverse_event(e: Event) -> Event:
  """The event seen when the timeline 0..16 is played backwards."""
  f0, f1 = LAST - e.f1, LAST - e.f0
  if e.kind in ("move", "stop"):
    return dataclasses.replace(e, f0=f0, f1=f1, direction=OPPOSITE[e.direction])
  if e.kind == "bounce":
    return dataclasses.replace(e, f0=f0, f1=f1, fc=LAST - e.fc)
  if e.kind == "change_colour":
    return dataclasses.replace(e, f0=f0, f1=f1, src=e.dst, dst=e.src)
  return dataclasses.replace(e, kind=INVERSE_KIND[e.kind], f0=f0, f1=f1)


def _final_actor(actor: Actor, events: Sequence[Event], i: int) -> Actor:
  """Attributes of actor i after all events."""
  colour, size, visible = actor.colour, actor.size, actor.visible
  for e in events:
    if e.actor != i:
      continue
    if e.kind == "change_colour":
      colour = e.dst
    elif e.kind in ("grow", "shrink"):
      size = "big" if e.kind == "grow" else "small"
    elif e.kind in ("appear", "disappear"):
      visible = e.kind == "appear"
  return Actor(actor.shape, colour, size, visible)


def _reverse_clip(clip: Clip) -> Clip:
  """The pair partner: same frame 8, every event inverted and in reverse order."""
  actors = [_final_actor(a, clip.events, i) for i, a in enumerate(clip.actors)]
  events = [_reverse_event(e) for e in reversed(clip.events)]
  return Clip(actors, events, tuple(t.reversed() for t in clip.tracks))


_MAX_TRIES = 2000


def sample_clip(rng: np.random.Generator, allow_stop: bool, forced: Event | None = None
                 ) -> Clip:
  """One random valid clip (rejection sampling over scripts and placements)."""
  for _ in range(_MAX_TRIES):
    if forced is None:
      n_actors = int(rng.choice([1, 2, 3], p=ACTORS_P))
      n_events = int(rng.choice([1, 2, 3], p=EVENTS_P))
    else:
      n_actors = int(rng.choice([1, 2, 3], p=KINETICS_ACTORS_P))
      n_actors = max(n_actors, 2) if forced.kind == "stop" else n_actors
      n_events = 1
    script = _sample_script(rng, n_actors, n_events, allow_stop, forced)
    if script is None:
      continue
    tracks = _place(rng, *script)
    if tracks is not None:
      return Clip(script[0], script[1], tracks)
  raise RuntimeError(f"no valid clip in {_MAX_TRIES} draws (forced={forced})")


def sample_pair(rng: np.random.Generator, forced: Event | None = None) -> tuple[Clip, Clip]:
  """Two clips with the same frame 8 and different captions."""
  for _ in range(_MAX_TRIES):
    a = sample_clip(rng, allow_stop=False, forced=forced)
    b = _reverse_clip(a)
    if canonical_caption(a) != canonical_caption(b):
      return a, b
  raise RuntimeError(f"no pair with distinct captions in {_MAX_TRIES} draws (forced={forced})")


# ----------------------------------------------------------------------------------------------
# Language. Phrases are lists of words and ("V", verb) slots conjugated per form.

VERB_FORMS = {
    "move": ("moves", "moving"), "go": ("goes", "going"), "slide": ("slides", "sliding"),
    "travel": ("travels", "traveling"), "grow": ("grows", "growing"), "get": ("gets", "getting"),
    "become": ("becomes", "becoming"), "shrink": ("shrinks", "shrinking"),
    "appear": ("appears", "appearing"), "show": ("shows", "showing"), "fade": ("fades", "fading"),
    "pop": ("pops", "popping"), "vanish": ("vanishes", "vanishing"),
    "disappear": ("disappears", "disappearing"), "turn": ("turns", "turning"),
    "change": ("changes", "changing"), "bounce": ("bounces", "bouncing"),
    "hit": ("hits", "hitting"), "stop": ("stops", "stopping"), "stay": ("stays", "staying"),
}
SIZE_WORDS = {"big": ("big", "large"), "small": ("small", "little")}
Phrase = list  # of str | tuple[str, str]


def _conj(phrase: Phrase, form: str) -> str:
  """form: "present" (moves left), "gerund" (moving left) or "base" (move left)."""
  words = []
  for item in phrase:
    if isinstance(item, tuple):
      verb = item[1]
      words.append(verb if form == "base" else VERB_FORMS[verb][0 if form == "present" else 1])
    else:
      words.append(item)
  return " ".join(w for w in words if w)


def _colour_at(clip: Clip, actor: int, event_index: int) -> str:
  """Colour of an actor when event `event_index` starts (len(events): at the end)."""
  colour = clip.actors[actor].colour
  for e in clip.events[:event_index]:
    if e.actor == actor and e.kind == "change_colour":
      colour = e.dst
  return colour


def _size_at(clip: Clip, actor: int, event_index: int) -> str:
  size = clip.actors[actor].size
  for e in clip.events[:event_index]:
    if e.actor == actor and e.kind in ("grow", "shrink"):
      size = "big" if e.kind == "grow" else "small"
  return size


def _the(clip: Clip, actor: int, event_index: int) -> str:
  """Definite name at a moment: "the red square" (colours are unique at every moment)."""
  return f"the {_colour_at(clip, actor, event_index)} {clip.actors[actor].shape}"


def _event_variants(clip: Clip, i: int) -> list[Phrase]:
  """Ways to say event i without its subject; the first one is canonical."""
  e = clip.events[i]
  v = lambda verb: ("V", verb)  # noqa: E731
  if e.kind == "move":
    d = e.direction
    where = [d, f"to the {d}"] if d in ("left", "right") else [d, f"{d}wards"]
    return [[v(verb), w] for verb in ("move", "go", "slide", "travel") for w in where]
  if e.kind == "grow":
    return [[v("grow")], [v("get"), "bigger"], [v("become"), "bigger"], [v("grow"), "larger"],
            [v("get"), "larger"]]
  if e.kind == "shrink":
    return [[v("shrink")], [v("get"), "smaller"], [v("become"), "smaller"],
            [v("shrink"), "down"]]
  if e.kind == "appear":
    return [[v("appear")], [v("show"), "up"], [v("fade"), "in"], [v("pop"), "up"]]
  if e.kind == "disappear":
    return [[v("disappear")], [v("vanish")], [v("fade"), "away"], [v("fade"), "out"]]
  if e.kind == "change_colour":
    c = e.dst
    return [[v("turn"), c], [v("change"), "colour to", c], [v("become"), c],
            [v("change"), "to", c]]
  if e.kind == "bounce":
    w = e.wall
    return [[v("bounce"), f"off the {w} wall"], [v("hit"), f"the {w} wall and", v("bounce"),
                                                  "back"],
            [v("bounce"), f"back from the {w} wall"], [v("bounce"), "off the wall"]]
  if e.kind == "stop":
    d, t = e.direction, _the(clip, e.target, i)
    return [[v("move"), d, "and", v("stop"), "because it hits", t],
            [v("move"), d, "and", v("stop"), "when it hits", t],
            [v("move"), d, "until it hits", t, "and", v("stop")],
            [v("slide"), d, "and", v("stop"), "because it hits", t]]
  raise ValueError(e.kind)


class _Writer:
  """Builds sentences about a clip; rng=None gives the canonical wording."""

  def __init__(self, clip: Clip, rng: np.random.Generator | None):
    self.clip = clip
    self.rng = rng

  def _pick(self, options: Sequence[Any]) -> Any:
    return options[0] if self.rng is None else options[int(self.rng.integers(len(options)))]

  def _chance(self, p: float) -> bool:
    return self.rng is not None and bool(self.rng.random() < p)

  def first_mention(self, actor: int, event_index: int = 0, article: str = "a") -> str:
    a = self.clip.actors[actor]
    colour, size = _colour_at(self.clip, actor, event_index), _size_at(self.clip, actor,
                                                                       event_index)
    size_word = "" if self._chance(0.25) else self._pick(SIZE_WORDS[size])
    return " ".join(w for w in (article, size_word, colour, a.shape) if w)

  def later_mention(self, actor: int, event_index: int) -> str:
    if self._chance(0.3):
      return f"the {self.clip.actors[actor].shape}"
    return _the(self.clip, actor, event_index)

  def phrase(self, i: int) -> Phrase:
    return self._pick(_event_variants(self.clip, i))

  def sentence(self, parts: Sequence[Any]) -> str:
    """parts: strings, and (event_index, form) slots with form "present", "prog" or "ger"."""
    out, mentioned, prev = [], set(), None
    for part in parts:
      if isinstance(part, str):
        out.append(part)
        continue
      i, form = part
      a = self.clip.events[i].actor
      body = _conj(self.phrase(i), "present" if form == "present" else "gerund")
      if a == prev and form == "ger":
        subject = ""
      elif a == prev:
        subject = "it"
      elif a in mentioned:
        subject = self.later_mention(a, i)
      else:
        subject = self.first_mention(a, i)
      mentioned.add(a)
      prev = a
      words = [subject, "is" if form == "prog" else "", body]
      out.append(" ".join(w for w in words if w))
    return " ".join("".join(out).split())

  def static_actors(self) -> list[int]:
    busy = {e.actor for e in self.clip.events} | {e.target for e in self.clip.events
                                                  if e.target is not None}
    return [a for a in range(len(self.clip.actors)) if a not in busy]


def canonical_caption(clip: Clip) -> str:
  """"a big red circle moves left, then it grows, then a small blue square turns green.\""""
  parts: list[Any] = []
  for i in range(len(clip.events)):
    if i:
      parts.append(", then ")
    parts.append((i, "present"))
  return _Writer(clip, None).sentence(parts) + "."


_TEMPLATES: dict[int, list[list[Any]]] = {
    1: [[(0, "present")], [(0, "prog")], ["a video of ", (0, "ger")],
        ["in this video ", (0, "present")], ["we see ", (0, "ger")],
        ["a clip of ", (0, "ger")], ["here ", (0, "present")]],
    2: [[(0, "present"), ", then ", (1, "present")],
        [(0, "present"), " and then ", (1, "present")],
        ["first ", (0, "present"), ", then ", (1, "present")],
        [(0, "present"), ". after that ", (1, "present")],
        [(1, "present"), " after ", (0, "present")],
        [(0, "present"), " before ", (1, "present")],
        ["after ", (0, "present"), ", ", (1, "present")],
        [(0, "prog"), " and then ", (1, "prog")],
        ["a video of ", (0, "ger"), " and then ", (1, "ger")]],
    3: [[(0, "present"), ", then ", (1, "present"), ", then ", (2, "present")],
        ["first ", (0, "present"), ", then ", (1, "present"), ", and finally ", (2, "present")],
        [(0, "present"), " and then ", (1, "present"), ". after that ", (2, "present")],
        ["after ", (0, "present"), ", ", (1, "present"), ", and then ", (2, "present")],
        [(0, "prog"), ", then ", (1, "prog"), " and then ", (2, "prog")],
        [(0, "present"), " before ", (1, "present"), ", and at the end ", (2, "present")]],
}


def paraphrases(clip: Clip, rng: np.random.Generator, count: int) -> list[str]:
  """`count` distinct human-style captions (MSR-VTT style: lower case, no final period)."""
  w = _Writer(clip, rng)
  templates = _TEMPLATES[len(clip.events)]
  out: list[str] = []
  for _ in range(50 * count):
    s = w.sentence(templates[int(rng.integers(len(templates)))])
    static = w.static_actors()
    if static and rng.random() < 0.3:
      tail = rng.choice([" while {} stays still", " and {} does not move"])
      s += tail.format(w.first_mention(int(rng.choice(static))))
    if s not in out:
      out.append(s)
    if len(out) == count:
      break
  return out


_COLOUR_WORDS = tuple(COLOURS)
_SIZE_ALL = ("big", "small", "large", "little")
_CONFUSIONS = (_COLOUR_WORDS, SHAPES, tuple(DIRECTIONS), _SIZE_ALL,
               ("the", "a", "and", "it", "is", "in", "on", "then"))
_FILLERS = ("um", "uh", "so", "like", "okay")


def spoken_caption(clip: Clip, rng: np.random.Generator, error_rate: float = 0.1) -> str:
  """S-MiT style: one spoken description, fillers, ~error_rate of the words dropped/swapped."""
  w = _Writer(clip, rng)
  n = len(clip.events)
  joins = (" and then ", " and ", " then ", " and after that ", " and then uh ")
  # A quarter of the descriptions open with a filler (S-MiT's transcripts mostly start on content).
  starter = "" if rng.random() < 0.75 else str(
      rng.choice(["um ", "uh ", "so ", "okay so ", "um so ", "there's "]))
  parts: list[Any] = []
  for i in range(n):
    if i:
      parts.append(str(rng.choice(joins)))
    prog = rng.random() < 0.6 or (i == 0 and starter == "there's ")
    parts.append((i, "prog" if prog else "present"))
  text = starter + w.sentence(parts)
  if starter == "there's ":  # "there's a red circle moving left ..."
    text = text.replace(" is ", " ", 1)
  words = []
  for word in text.split():
    if word in _FILLERS or rng.random() >= error_rate:
      words.append(word)
      continue
    if rng.random() < 0.4:
      continue  # Dropped word.
    group = next((g for g in _CONFUSIONS if word in g), _CONFUSIONS[-1])
    words.append(str(rng.choice([g for g in group if g != word])))
  return " ".join(words)


def _word_times(words: Sequence[str], t0: float, t1: float) -> list[dict[str, Any]]:
  step = (t1 - t0) / max(len(words), 1)
  return [{"utterance": wd, "start_time": round(t0 + k * step, 3),
           "end_time": round(t0 + (k + 1) * step, 3)} for k, wd in enumerate(words)]


def narratives(clip: Clip) -> list[dict[str, Any]]:
  """VidLN style: one narrative per actor stating its events, their order and causes."""
  w = _Writer(clip, None)
  out = []
  seconds = NUM_FRAMES / FPS
  for a, actor in enumerate(clip.actors):
    name = f"the {actor.size} {actor.colour} {actor.shape}"
    sentences: list[str] = []
    align: list[dict[str, Any]] = []
    mine = [i for i, e in enumerate(clip.events) if e.actor == a]
    for k, i in enumerate(mine):
      e = clip.events[i]
      subject = name if k == 0 else "it"
      if i == 0:
        anchor = "at the start, " if e.f0 <= 2 else "first, "
      elif clip.events[i - 1].actor == a:
        anchor = "finally, " if i == len(clip.events) - 1 and len(mine) > 2 else "then "
      else:
        prev = clip.events[i - 1]
        anchor = f"after {_the(clip, prev.actor, i - 1)} {_conj(w.phrase(i - 1), 'present')}, "
      body = _conj(w.phrase(i), "present")
      sentences.append(f"{anchor}{subject} {body}.")
      align += _word_times(body.split(), e.f0 / FPS, e.f1 / FPS)
    hits = [(i, e) for i, e in enumerate(clip.events) if e.kind == "stop" and e.target == a]
    if hits:
      i, e = hits[0]
      sentences.append(f"{name} stays still until {_the(clip, e.actor, i)} hits it.")
      align += _word_times(["stays", "still"], 0.0, e.f1 / FPS)
      align += _word_times(["hits"], (e.f1 - 1) / FPS, e.f1 / FPS)
    elif not mine:
      sentences.append(f"{name} stays still the whole time.")
      align += _word_times(["stays", "still"], 0.0, seconds)
    description = " ".join(s[0].upper() + s[1:] for s in sentences)
    out.append({"actor_idx": a, "actor_name": name, "description": description,
                "time_alignment": align})
  return out


def appearance(clip: Clip, frame: int) -> list[tuple[str, str, str]]:
  """(size, colour, shape) of the actors visible at a frame, as one still shows them."""
  names = list(COLOURS)
  table = np.asarray([COLOURS[c] for c in names], np.float32)
  out = []
  for a, t in zip(clip.actors, clip.tracks):
    if t.alpha[frame] < 0.5:
      continue
    colour = names[int(np.argmin(np.abs(table - t.rgb[frame][None]).sum(-1)))]
    size = "big" if t.r[frame] >= (SIZES["big"] + SIZES["small"]) / 2 else "small"
    out.append((size, colour, a.shape))
  return out


def _list_words(items: Sequence[str]) -> str:
  if len(items) <= 1:
    return "".join(items)
  return ", ".join(items[:-1]) + " and " + items[-1]


def alt_text(clip: Clip, rng: np.random.Generator, wrong_rate: float = 0.15) -> str:
  """WebVid-style alt-text: the middle frame's appearance, rarely motion, sometimes wrong."""
  seen = appearance(clip, MID_FRAME)
  if not seen:
    return str(rng.choice(["plain grey background", "empty grey background",
                           "abstract grey backdrop"]))
  if len(seen) > 1 and rng.random() < 0.3:
    seen = [seen[int(rng.integers(len(seen)))]]
  seen = list(seen)
  if rng.random() < wrong_rate:
    k = int(rng.integers(len(seen)))
    size, colour, shape = seen[k]
    if rng.random() < 0.5:
      colour = str(rng.choice([c for c in COLOURS if c != colour]))
    else:
      shape = str(rng.choice([s for s in SHAPES if s != shape]))
    seen[k] = (size, colour, shape)
  phrases = []
  for size, colour, shape in seen:
    size_word = "" if rng.random() < 0.3 else str(rng.choice(SIZE_WORDS[size]))
    phrases.append(" ".join(w for w in (size_word, colour, shape) if w))
  body = _list_words(phrases)
  if rng.random() < 0.2:  # A motion guess from one frame: vague or a random direction.
    body += str(rng.choice([" moving", " animation", f" moving {rng.choice(list(DIRECTIONS))}"]))
  template = str(rng.choice(["{}", "{} on a grey background", "stock footage of {}",
                             "animation of {}", "{}, simple shapes", "abstract background with {}",
                             "geometric shapes: {}", "{} isolated on grey"]))
  return template.format(body)


def appearance_captions(items: Sequence[tuple[str, str, str]], rng: np.random.Generator,
                        count: int) -> list[str]:
  """COCO-style captions of a still: what is there, never how it moves."""
  out: list[str] = []
  for k in range(20 * count):
    phrases = []
    for size, colour, shape in items:
      size_word = SIZE_WORDS[size][0] if k == 0 else str(rng.choice(SIZE_WORDS[size]))
      phrases.append(f"a {size_word} {colour} {shape}")
    if k == 0:
      s = _list_words(phrases)
    else:
      s = str(rng.choice(["{}", "{} on a grey background", "there is {}", "a picture of {}",
                          "{} in an empty frame"])).format(_list_words(phrases))
      if len(items) > 1 and rng.random() < 0.3:
        s = f"{NUMBER_WORDS[len(items)]} shapes: " + _list_words(phrases)
    if s not in out:
      out.append(s)
    if len(out) == count:
      break
  return out


# ----------------------------------------------------------------------------------------------
# NExT-QA style questions: short answers (1-3 words) that mostly need the order of events.


def _short_present(clip: Clip, i: int) -> str:
  e = clip.events[i]
  return "stops" if e.kind == "stop" else _conj(_event_variants(clip, i)[0], "present")


def _short_gerund(clip: Clip, i: int) -> str:
  e = clip.events[i]
  return "stopping" if e.kind == "stop" else _conj(_event_variants(clip, i)[0], "gerund")


def _answer(clip: Clip, i: int) -> str:
  """Base-form answer naming event i: "move left", "grow", "turn blue", "bounce"."""
  e = clip.events[i]
  if e.kind in ("move", "stop"):
    return f"move {e.direction}"
  if e.kind == "change_colour":
    return f"turn {e.dst}"
  return {"grow": "grow", "shrink": "shrink", "appear": "appear", "disappear": "disappear",
          "bounce": "bounce"}[e.kind]


def _base_phrase(clip: Clip, i: int) -> str:
  e = clip.events[i]
  if e.kind == "stop":
    return f"hit {_the(clip, e.target, i)}"
  return _conj(_event_variants(clip, i)[0], "base")


def _negation(clip: Clip, i: int) -> str | None:
  """A base phrase for something actor events[i].actor never does, or None."""
  e = clip.events[i]
  theirs = {_base_phrase(clip, j) for j, o in enumerate(clip.events) if o.actor == e.actor}
  if e.kind == "move":
    cand = f"move {OPPOSITE[e.direction]}"
  elif e.kind in ("grow", "shrink", "appear", "disappear"):
    cand = INVERSE_KIND[e.kind]
  elif e.kind == "change_colour":
    cand = f"turn {e.src}"
  else:
    return None
  return None if cand in theirs else cand


def nextqa_questions(clip: Clip, rng: np.random.Generator, count: int
                     ) -> list[tuple[str, str, str]]:
  """Up to `count` (question, answer, type) with at most two of a type, temporal ones first."""
  ev = clip.events
  shape = lambda a: f"the {clip.actors[a].shape}"  # noqa: E731  (shapes are unique in a clip)
  per_actor = {a: [i for i, e in enumerate(ev) if e.actor == a] for a in range(len(clip.actors))}
  c: dict[str, list[tuple[str, str]]] = {t: [] for t in NEXTQA_TYPES}
  for i in range(len(ev) - 1):
    e, nxt = ev[i], ev[i + 1]
    if e.actor == nxt.actor:
      c["TN"].append((f"what does {shape(e.actor)} do after {_short_gerund(clip, i)}?",
                      _answer(clip, i + 1)))
      c["TN"].append((f"what does {shape(e.actor)} do before {_short_gerund(clip, i + 1)}?",
                      _answer(clip, i)))
    else:
      c["TN"].append((f"what does {shape(nxt.actor)} do after {shape(e.actor)} "
                      f"{_short_present(clip, i)}?", _answer(clip, i + 1)))
      c["TN"].append((f"what does {shape(e.actor)} do before {shape(nxt.actor)} "
                      f"{_short_present(clip, i + 1)}?", _answer(clip, i)))
  static = [a for a, idx in per_actor.items()
            if not idx and not any(e.kind == "stop" and e.target == a for e in ev)]
  for a, idx in per_actor.items():
    if len(idx) >= 2:
      c["TC"].append((f"what does {shape(a)} do first?", _answer(clip, idx[0])))
      c["TC"].append((f"what does {shape(a)} do at the end?", _answer(clip, idx[-1])))
    elif len(idx) == 1 and static:
      c["TC"].append((f"what does {shape(a)} do while {shape(static[0])} stays still?",
                      _answer(clip, idx[0])))
  for i, e in enumerate(ev):
    a = e.actor
    if e.kind == "stop":
      c["CW"].append((f"why does {shape(a)} stop?", f"hit {clip.actors[e.target].shape}"))
      c["CH"].append((f"how does {shape(a)} reach {shape(e.target)}?", f"move {e.direction}"))
    if e.kind == "bounce":
      c["CW"].append((f"why does {shape(a)} turn around?", "hit wall"))
      c["CH"].append((f"how does {shape(a)} reach the {e.wall} wall?", f"move {e.direction}"))
      c["DL"].append((f"which wall does {shape(a)} bounce off?", f"{e.wall} wall"))
    if len(per_actor[a]) == 1 and e.kind not in ("stop", "bounce", "move"):
      c["CH"].append((f"how does {shape(a)} change?", _answer(clip, i)))
    moves = [j for j in per_actor[a] if ev[j].kind in ("move", "stop", "bounce")]
    if e.kind in ("move", "stop") and moves == [i]:
      c["DL"].append((f"where does {shape(a)} move?", e.direction))
    c["DB"].append((f"does {shape(a)} {_base_phrase(clip, i)}?", "yes"))
    neg = _negation(clip, i)
    if neg is not None:
      c["DB"].append((f"does {shape(a)} {neg}?", "no"))
  for i in range(len(ev)):
    for j in range(i + 1, len(ev)):
      if ev[i].kind == "stop" or ev[j].kind == "stop":
        continue
      second = "it" if ev[j].actor == ev[i].actor else shape(ev[j].actor)
      first = "it" if ev[j].actor == ev[i].actor else shape(ev[i].actor)
      c["DB"].append((f"does {shape(ev[i].actor)} {_base_phrase(clip, i)} before {second} "
                      f"{_short_present(clip, j)}?", "yes"))
      c["DB"].append((f"does {shape(ev[j].actor)} {_base_phrase(clip, j)} before {first} "
                      f"{_short_present(clip, i)}?", "no"))
  n = len(clip.actors)
  c["DC"].append(("how many shapes are there?", NUMBER_WORDS[n]))
  movers = sum(1 for a in range(n) if any(ev[j].kind in ("move", "stop", "bounce")
                                           for j in per_actor[a]))
  if movers:
    c["DC"].append(("how many shapes move?", NUMBER_WORDS[movers]))
  for a in range(n):
    start_c, end_c = clip.actors[a].colour, _colour_at(clip, a, len(ev))
    start_s, end_s = clip.actors[a].size, _size_at(clip, a, len(ev))
    if start_c != end_c:
      c["DO"].append((f"what colour is {shape(a)} at the end?", end_c))
      c["DO"].append((f"what colour is {shape(a)} at the start?", start_c))
    else:
      c["DO"].append((f"what colour is {shape(a)}?", start_c))
      owners = {b for b in range(n) if start_c in (clip.actors[b].colour,
                                                   _colour_at(clip, b, len(ev)))}
      if owners == {a}:
        c["DO"].append((f"what shape is the {start_c} one?", clip.actors[a].shape))
    if start_s != end_s:
      c["DO"].append((f"what size is {shape(a)} at the end?", end_s))
    else:
      c["DO"].append((f"what size is {shape(a)}?", start_s))
  # Balance yes/no, then pick round-robin over types (temporal and causal first).
  yes = [q for q in c["DB"] if q[1] == "yes"]
  no = [q for q in c["DB"] if q[1] == "no"]
  if yes or no:
    pool = yes if yes and (not no or rng.random() < 0.5) else no
    c["DB"] = [pool[int(rng.integers(len(pool)))]]
  order = ["TN", "CW", "TC", "CH", "DB", "DL", "DO", "DC"]
  for t in order:
    rng.shuffle(c[t])
  picked: list[tuple[str, str, str]] = []
  for rnd in range(2):
    for t in order:
      if len(c[t]) > rnd and len(picked) < count:
        q, ans = c[t][rnd]
        picked.append((q, ans, t))
  return picked


def kinetics_label(clip: Clip) -> str:
  """The action class of a single-event clip."""
  e = clip.events[0]
  if e.kind == "move":
    return f"moving {e.direction}"
  return {"grow": "growing", "shrink": "shrinking", "appear": "appearing",
          "disappear": "disappearing", "change_colour": "changing colour",
          "bounce": "bouncing", "stop": "colliding"}[e.kind]


def _label_template(label: str) -> Event:
  """Event template (kind, direction) for a Kinetics label."""
  if label.startswith("moving "):
    return Event("move", 0, 0, 0, direction=label.split()[1])
  kind = {"growing": "grow", "shrinking": "shrink", "appearing": "appear",
          "disappearing": "disappear", "changing colour": "change_colour",
          "bouncing": "bounce", "colliding": "stop"}[label]
  return Event(kind, 0, 0, 0)


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


def _event_record(e: Event) -> dict[str, Any]:
  rec: dict[str, Any] = {"t0": e.f0 / FPS, "t1": e.f1 / FPS, "actor": e.actor, "kind": e.kind}
  if e.kind in ("move", "stop", "bounce"):
    rec["direction"] = e.direction
  if e.kind == "bounce":
    rec["wall"] = e.wall
    rec["t_contact"] = e.fc / FPS
  if e.kind == "change_colour":
    rec["from"], rec["to"] = e.src, e.dst
  if e.kind == "stop":
    rec["cause"] = "hit"
    rec["target"] = e.target
    rec["t_contact"] = e.f1 / FPS
  return rec


def clip_record(clip: Clip) -> dict[str, Any]:
  """The world/clips.jsonl line of a clip (ground truth, not for model use)."""
  return {
      "clip_id": clip.clip_id, "dataset": clip.dataset, "subset": clip.subset,
      "split": clip.split, "file": clip.file,
      "actors": [{"idx": i, "shape": a.shape, "colour": a.colour, "size": a.size,
                  "visible_at_start": a.visible} for i, a in enumerate(clip.actors)],
      "events": [_event_record(e) for e in clip.events],
      "pair_id": clip.pair_id, "caption_canonical": canonical_caption(clip),
      "num_frames": NUM_FRAMES, "fps": FPS, "middle_frame": MID_FRAME, **clip.extra}


def read_records(world_dir: str | os.PathLike) -> list[dict[str, Any]]:
  """Every clip's ground-truth record (world/clips.jsonl under a generated world), in file order."""
  path = pathlib.Path(world_dir) / "world" / "clips.jsonl"
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def clip_from_record(record: Mapping[str, Any]) -> Clip:
  """A clip's script back from its world/clips.jsonl line, so tools can write more of its texts
  (paraphrases, spoken captions) after the world was generated. No tracks (pixels) and no move
  amounts: texts do not use them."""
  actors = [Actor(a["shape"], a["colour"], a["size"], bool(a["visible_at_start"]))
            for a in record["actors"]]
  events = [Event(kind=e["kind"], actor=int(e["actor"]), f0=round(e["t0"] * FPS),
                  f1=round(e["t1"] * FPS), direction=e.get("direction"), wall=e.get("wall"),
                  fc=round(e["t_contact"] * FPS) if e["kind"] == "bounce" else None,
                  src=e.get("from"), dst=e.get("to"), target=e.get("target"))
            for e in record["events"]]
  return Clip(actors, events, tracks=(), pair_id=record.get("pair_id"),
              clip_id=record["clip_id"], dataset=record["dataset"],
              subset=record.get("subset", ""), split=record.get("split", ""),
              file=record.get("file", ""))


# ----------------------------------------------------------------------------------------------
# Writers of the real formats.


def _write_csv(path: pathlib.Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def _write_json(path: pathlib.Path, obj: Any, indent: int | None = None) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=indent)
    f.write("\n")


def _write_jsonl(path: pathlib.Path, objs: Sequence[Any]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for o in objs:
      f.write(json.dumps(o) + "\n")


def train_spm(lines: Sequence[str], model_prefix: pathlib.Path, vocab_size: int = 1000) -> int:
  """Trains the demo SentencePiece model (unigram, case-folded, pad/eos/bos/unk = 0/1/2/3).

  vocab_size is an upper bound (hard_vocab_limit=False): the world's text supports fewer pieces.
  Returns the size of the trained vocabulary.
  """
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  model_prefix.parent.mkdir(parents=True, exist_ok=True)
  lines = [" ".join(line.split()) for line in lines if line.strip()]
  # Each distinct word on its own line keeps whole-word pieces; the character line keeps any
  # lower-case word, digit and common punctuation representable (no <unk> outside the world).
  words = sorted({w for line in lines for w in line.lower().split()})
  chars = " ".join("abcdefghijklmnopqrstuvwxyz0123456789.,:;?!'\"-()/")
  sentences = lines + words * 5 + [chars]
  spm.set_random_generator_seed(0)  # The trainer's default seed comes from the clock.
  model = io.BytesIO()  # Not model_prefix: the proto would record the output path.
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_writer=model,
      model_type="unigram", vocab_size=vocab_size, hard_vocab_limit=False,
      normalization_rule_name="nmt_nfkc_cf", character_coverage=1.0,
      pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="</s>",
      bos_piece="<s>", unk_piece="<unk>", user_defined_symbols=["\n"], num_threads=1,
      minloglevel=2)
  model_prefix.with_suffix(".model").write_bytes(model.getvalue())
  sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
  with open(model_prefix.with_suffix(".vocab"), "w", encoding="utf-8") as f:
    for i in range(sp.get_piece_size()):  # spm_train's .vocab layout: piece TAB score.
      f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")
  return int(sp.get_piece_size())


# ----------------------------------------------------------------------------------------------
# The generator. Work is split into units (one clip, one same-middle-frame pair, or one still),
# each drawn from its own random stream, so the world does not depend on how units are spread
# over worker processes. Workers sample, render and encode; the main process writes the text.

_FORMAT_DIRS = ("world", "stills", "smit", "vidln", "webvid", "msrvtt", "nextqa", "kinetics",
                "spm")


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


def _still_captions(clip: Clip, still: dict[str, Any], rng: np.random.Generator) -> list[str]:
  """COCO captions of a still: appearance only, or the cued action in words."""
  frame = still["frame"]
  if still["cue"] is None:
    return appearance_captions(appearance(clip, frame), rng, 2)
  i = still["cue_event"]
  e = clip.events[i]
  w = _Writer(clip, rng)
  subject = w.first_mention(e.actor, i)
  if e.kind == "stop":  # One frame shows the motion, not its cause.
    d = e.direction
    variants = [f"{subject} moving {d}", f"{subject} moves {d}", f"{subject} is moving {d}"]
  else:
    variants = [f"{subject} {_conj(_event_variants(clip, i)[0], 'gerund')}",
                f"{subject} {_conj(w.phrase(i), 'present')}",
                f"{subject} is {_conj(w.phrase(i), 'gerund')}"]
  others = [x for x in appearance(clip, frame) if x[2] != clip.actors[e.actor].shape]
  if others and rng.random() < 0.5:
    size, colour, shape = others[0]
    variants[1] += f" next to a {size} {colour} {shape}"
  return list(dict.fromkeys(variants))


def run_units(seed: int, out: str, units: Sequence[_Unit]) -> list[_Done]:
  """Samples, renders and writes the units (pool worker entry point)."""
  done = []
  for u in units:
    rng = _stream(seed, u.set_name, u.index)
    forced = _label_template(u.forced) if u.forced is not None else None
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
  # Pickle the worker by its importable name even when this file runs as __main__.
  import data.demo_world as module  # pylint: disable=import-outside-toplevel
  with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
    futures = [ex.submit(module.run_units, seed, str(out), c) for c in chunks]
    return [d for f in futures for d in f.result()]


def generate(out_dir: str | os.PathLike, preset: str = "demo", seed: int = 0, *,
             workers: int | None = None) -> dict[str, Any]:
  """Generates the demo world under out_dir; returns (and writes to manifest.json) its summary.

  Args:
    out_dir: output root. Only the world's own sub-directories (world, stills, smit, vidln,
      webvid, msrvtt, nextqa, kinetics, spm) and manifest.json are replaced.
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
      captions = _still_captions(clip, clip.extra["still"], rng)
      images.append({"id": image_id, "file_name": f"{image_id:06d}.png",
                     "height": wr.FRAME_SIZE, "width": wr.FRAME_SIZE})
      for cap in captions:  # Annotation ids: 1.. (train), 1000001.. (val).
        annotations.append({"id": len(annotations) + 1 + (0 if subset == "train" else 10**6),
                            "image_id": image_id, "caption": cap})
      record(clip, captions=captions)
      text += captions
    stills[subset] = {"info": {"description": "viit_jax demo world stills"}, "licenses": [],
                      "images": images, "annotations": annotations}
    _write_json(out / "stills" / f"captions_{subset}.json", stills[subset])

  smit_counts = {}
  for subset in ("train", "val"):
    rows = []
    for clip, cid, rng in clips_of(f"smit/{subset}", "smit", subset, subset, "{}"):
      caption = spoken_caption(clip, rng)
      rows.append((cid, f"videos/{cid}.mp4", caption))
      record(clip, caption_spoken=caption)
      text.append(caption)
    _write_csv(out / "smit" / f"{subset}.csv", ("video_id", "video_path", "caption"), rows)
    smit_counts[subset] = len(rows)

  vidln_lines = []
  for clip, cid, rng in clips_of("vidln/train", "vidln", "train", "train", "{}"):
    nar = narratives(clip)
    vidln_lines.append({"dataset_id": "demo", "video_id": cid, "video_path": f"videos/{cid}.mp4",
                        "annotator_id": f"annotator_{int(rng.integers(1, 6))}",
                        "actor_narratives": nar})
    record(clip)
    text += [n["description"] for n in nar] + [n["actor_name"] for n in nar]
  _write_jsonl(out / "vidln" / "train.jsonl", vidln_lines)

  rows = []
  for p, (clip, vid, rng) in enumerate(clips_of("webvid/pool", "webvid", "pool", "train",
                                                 "webvid-{}")):
    name = alt_text(clip, rng)
    page = p // 50 * 50
    rows.append((vid, f"videos/{vid}.mp4", f"PT00H00M{NUM_FRAMES // FPS:02d}S",
                 f"{page + 1:06d}_{page + 50:06d}", name))
    record(clip, alt_text=name)
    text.append(name)
  _write_csv(out / "webvid" / "results_pool.csv",
             ("videoid", "contentUrl", "duration", "page_dir", "name"), rows)
  n_pool = len(rows)

  videos, sentences, jsfusion = [], [], []
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
        k = len(jsfusion)
        jsfusion.append((k, f"ret{k}", f"msr{number}", vid, caps[0]))
      record(clip, captions=caps)
      text += caps
  _write_json(out / "msrvtt" / "MSRVTT_data.json",
              {"info": {"description": "viit_jax demo world, MSR-VTT layout"},
               "videos": videos, "sentences": sentences})
  _write_csv(out / "msrvtt" / "MSRVTT_JSFUSION_test.csv",
             ("", "key", "vid_key", "video_id", "sentence"), jsfusion)

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
    _write_csv(out / "nextqa" / f"{subset}.csv",
               ("video", "frame_count", "width", "height", "question", "answer", "qid", "type"),
               rows)
    nextqa_counts[subset] = {"videos": len(listed), "questions": len(rows)}
  _write_json(out / "nextqa" / "map_vid_vidorID.json", vid_map)

  rows = []
  for clip, (yt, t0, t1), _ in clips_of("kinetics/test", "kinetics", "test", "test",
                                         "kinetics-{0[0]}"):
    label = kinetics_label(clip)
    rows.append((label, yt, t0, t1, "test"))
    record(clip, label=label)
  _write_csv(out / "kinetics" / "test.csv",
             ("label", "youtube_id", "time_start", "time_end", "split"), rows)

  _write_jsonl(out / "world" / "clips.jsonl", records)
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
  media = [c.file for d in done.values() for c in d.clips]
  summary = {
      "preset": preset, "seed": seed, "workers": n_workers,
      "clips": {"total": len(records), "per_split": per_split, "per_format": per_format},
      "pairs": {"pairs": pair_id, "clips_in_pairs": sum(paired.values()),
                "clips_in_pairs_per_format": paired},
      "texts": {"stills_captions": sum(len(s["annotations"]) for s in stills.values()),
                "smit_captions": smit_counts, "vidln_videos": len(vidln_lines),
                "webvid_alt_texts": n_pool, "msrvtt_videos": len(videos),
                "msrvtt_sentences": len(sentences), "msrvtt_1ka_rows": len(jsfusion),
                "nextqa": nextqa_counts, "kinetics_classes": len(KINETICS_LABELS),
                "spm_vocab_size": vocab},
      "files": {"mp4": sum(1 for f in media if f.endswith(".mp4")),
                "png": sum(1 for f in media if f.endswith(".png")),
                "media_bytes": sum(d.nbytes for d in done.values()),
                "total": len(files) + 1, "bytes": sum(p.stat().st_size for p in files)},
      "seconds": round(time.perf_counter() - start, 2),
  }
  _write_json(out / "manifest.json", summary, indent=2)
  return summary


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m data.demo_world", description=__doc__,
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


if __name__ == "__main__":
  # Run the importable module (not this __main__ copy) so pool workers unpickle the same classes.
  from data import demo_world as _module  # pylint: disable=import-self
  sys.exit(_module.main())
