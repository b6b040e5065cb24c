"""NExT-QA style questions of a demo world clip (short answers, 1-3 words, that mostly need the
order of events) and the Kinetics-style action label of a single-event clip.
"""
from __future__ import annotations

import numpy as np

from data.demo_world.language import colour_at, conj, definite_name, event_variants, size_at
from data.demo_world.vocabulary import (INVERSE_KIND, NEXTQA_TYPES, NUMBER_WORDS, OPPOSITE, Clip,
                                        Event)


def _short_present(clip: Clip, i: int) -> str:
  e = clip.events[i]
  return "stops" if e.kind == "stop" else conj(event_variants(clip, i)[0], "present")


def _short_gerund(clip: Clip, i: int) -> str:
  e = clip.events[i]
  return "stopping" if e.kind == "stop" else conj(event_variants(clip, i)[0], "gerund")


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
    return f"hit {definite_name(clip, e.target, i)}"
  return conj(event_variants(clip, i)[0], "base")


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
    start_c, end_c = clip.actors[a].colour, colour_at(clip, a, len(ev))
    start_s, end_s = clip.actors[a].size, size_at(clip, a, len(ev))
    if start_c != end_c:
      c["DO"].append((f"what colour is {shape(a)} at the end?", end_c))
      c["DO"].append((f"what colour is {shape(a)} at the start?", start_c))
    else:
      c["DO"].append((f"what colour is {shape(a)}?", start_c))
      owners = {b for b in range(n) if start_c in (clip.actors[b].colour,
                                                   colour_at(clip, b, len(ev)))}
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


def label_template(label: str) -> Event:
  """Event template (kind, direction) for a Kinetics label."""
  if label.startswith("moving "):
    return Event("move", 0, 0, 0, direction=label.split()[1])
  kind = {"growing": "grow", "shrinking": "shrink", "appearing": "appear",
          "disappearing": "disappear", "changing colour": "change_colour",
          "bouncing": "bounce", "colliding": "stop"}[label]
  return Event(kind, 0, 0, 0)
