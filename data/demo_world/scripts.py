"""Scripts of the demo world: which actor does what, in which order, where the actors start and
how they move (tracks that stay inside the frame and never overlap), and a clip's same-middle-frame
partner (the clip played backwards).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from data.demo_world import render as wr
from data.demo_world.language import canonical_caption
from data.demo_world.vocabulary import (
    ACTORS_P, COLOURS, DIRECTIONS, EVENT_WEIGHTS, EVENTS_P, FRAME_MAX, INVERSE_KIND,
    KINETICS_ACTORS_P, LAST, OPPOSITE, SHAPES, SIM_FRAMES, SIZES, WALLS, Actor, Clip, Event)

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
