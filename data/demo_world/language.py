"""The demo world's English writer: canonical captions, paraphrases (MSR-VTT), spoken captions
(S-MiT), actor narratives (VidLN), alt-text (WebVid) and captions of stills (COCO).

A phrase is a list of words and ("V", verb) slots, conjugated per form (VERB_FORMS).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from data.demo_world.vocabulary import (
    COLOURS, DIRECTIONS, FPS, MID_FRAME, NUM_FRAMES, NUMBER_WORDS, SHAPES, SIZE_WORDS, SIZES,
    VERB_FORMS, Clip)

Phrase = list  # of str | tuple[str, str]


def conj(phrase: Phrase, form: str) -> str:
  """form: "present" (moves left), "gerund" (moving left) or "base" (move left)."""
  words = []
  for item in phrase:
    if isinstance(item, tuple):
      verb = item[1]
      words.append(verb if form == "base" else VERB_FORMS[verb][0 if form == "present" else 1])
    else:
      words.append(item)
  return " ".join(w for w in words if w)


def colour_at(clip: Clip, actor: int, event_index: int) -> str:
  """Colour of an actor when event `event_index` starts (len(events): at the end)."""
  colour = clip.actors[actor].colour
  for e in clip.events[:event_index]:
    if e.actor == actor and e.kind == "change_colour":
      colour = e.dst
  return colour


def size_at(clip: Clip, actor: int, event_index: int) -> str:
  size = clip.actors[actor].size
  for e in clip.events[:event_index]:
    if e.actor == actor and e.kind in ("grow", "shrink"):
      size = "big" if e.kind == "grow" else "small"
  return size


def definite_name(clip: Clip, actor: int, event_index: int) -> str:
  """Definite name at a moment: "the red square" (colours are unique at every moment)."""
  return f"the {colour_at(clip, actor, event_index)} {clip.actors[actor].shape}"


def event_variants(clip: Clip, i: int) -> list[Phrase]:
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
    d, t = e.direction, definite_name(clip, e.target, i)
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
    colour, size = colour_at(self.clip, actor, event_index), size_at(self.clip, actor,
                                                                       event_index)
    size_word = "" if self._chance(0.25) else self._pick(SIZE_WORDS[size])
    return " ".join(w for w in (article, size_word, colour, a.shape) if w)

  def later_mention(self, actor: int, event_index: int) -> str:
    if self._chance(0.3):
      return f"the {self.clip.actors[actor].shape}"
    return definite_name(self.clip, actor, event_index)

  def phrase(self, i: int) -> Phrase:
    return self._pick(event_variants(self.clip, i))

  def sentence(self, parts: Sequence[Any]) -> str:
    """parts: strings, and (event_index, form) slots with form "present", "prog" or "ger"."""
    out, mentioned, prev = [], set(), None
    for part in parts:
      if isinstance(part, str):
        out.append(part)
        continue
      i, form = part
      a = self.clip.events[i].actor
      body = conj(self.phrase(i), "present" if form == "present" else "gerund")
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
        anchor = (f"after {definite_name(clip, prev.actor, i - 1)} "
                  f"{conj(w.phrase(i - 1), 'present')}, ")
      body = conj(w.phrase(i), "present")
      sentences.append(f"{anchor}{subject} {body}.")
      align += _word_times(body.split(), e.f0 / FPS, e.f1 / FPS)
    hits = [(i, e) for i, e in enumerate(clip.events) if e.kind == "stop" and e.target == a]
    if hits:
      i, e = hits[0]
      sentences.append(f"{name} stays still until {definite_name(clip, e.actor, i)} hits it.")
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



def still_captions(clip: Clip, still: dict[str, Any], rng: np.random.Generator) -> list[str]:
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
    variants = [f"{subject} {conj(event_variants(clip, i)[0], 'gerund')}",
                f"{subject} {conj(w.phrase(i), 'present')}",
                f"{subject} is {conj(w.phrase(i), 'gerund')}"]
  others = [x for x in appearance(clip, frame) if x[2] != clip.actors[e.actor].shape]
  if others and rng.random() < 0.5:
    size, colour, shape = others[0]
    variants[1] += f" next to a {size} {colour} {shape}"
  return list(dict.fromkeys(variants))
