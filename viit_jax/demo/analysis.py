"""The demo report's analysis against the world's script: what each training text gets right about
a pool clip (caption accuracy) and whether it carries what happens in a one-event clip (change
carried), and what each kind of fact is worth on the retrieval test set
(fact oracles on the clip side and on the query side). Only the demo world has a script to
compare with; `viit_jax.demo.report` shows these tables beside the claims.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import pathlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from data import demo_world
from data import readers
from data import rejects
from viit_jax import caption_sets
from viit_jax.demo import phases as ph

SOURCE_NAMES = {"alt_text": "alt-text", "frame_captions": "frame captions (image model, T=1)",
                "viit": "VIIT captions (phase-2 VLM)"}


def fmt(x: float | None) -> str:
  """The one number format of the report's tables (tests parse it back)."""
  return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


# ------------------------------------------------------------------------------------------------
# Caption accuracy against the world's script: what each training text gets right about a pool clip.

WORD_RE = re.compile(r"[a-z]+")
DIRECTION_WORDS = demo_world.DIRECTION_WORDS  # word -> direction
EVENT_STEMS = demo_world.EVENT_STEMS  # event kind -> word stems the world's writer names it with
ACCURACY_FIELDS = {"colour": "colour words", "shape": "shape words",
                   "direction": "direction words", "event": "event words"}


def _truth_sets(clip: Mapping[str, Any]) -> dict[str, set[str]]:
  events = clip["events"]
  return {"colour": {a["colour"] for a in clip["actors"]}
                    | {e["to"] for e in events if e["kind"] == "change_colour"},
          "shape": {a["shape"] for a in clip["actors"]},
          "direction": {e["direction"] for e in events if "direction" in e}
                       | {DIRECTION_WORDS[e["wall"]] for e in events if e.get("wall")},
          "event": {e["kind"] for e in events}}


def _event_kinds(words: Sequence[str]) -> list[str]:
  """The event kind each word names by its stem (EVENT_STEMS), in word order."""
  return [k for w in words for k, stems in EVENT_STEMS.items()
          if any(w.startswith(st) for st in stems)]


def _mentions(text: str, colours: Sequence[str], shapes: Sequence[str]) -> dict[str, list[str]]:
  words = WORD_RE.findall(text.lower())
  return {"colour": [w for w in words if w in colours],
          "shape": [w for w in words if w in shapes],
          "direction": [DIRECTION_WORDS[w] for w in words if w in DIRECTION_WORDS],
          "event": _event_kinds(words)}


def caption_accuracy(texts: Mapping[str, Sequence[str]], truth: Mapping[str, Mapping[str, Any]]
                     ) -> dict[str, float]:
  """Precision (%) of each kind of word over clips' texts: of the colour / shape / direction /
  event words a text names, the share that is true of its clip (any actor, any event); plus
  words per text. `texts`: clip file -> its texts; `truth`: clip file -> world record.
  """
  colours, shapes = tuple(demo_world.COLOURS), demo_world.SHAPES
  named = {k: 0 for k in ACCURACY_FIELDS}
  right = {k: 0 for k in ACCURACY_FIELDS}
  n_texts = n_words = 0
  for clip, ts in texts.items():
    if clip not in truth:
      continue
    sets = _truth_sets(truth[clip])
    for t in ts:
      n_texts += 1
      n_words += len(t.split())
      for k, ms in _mentions(t, colours, shapes).items():
        named[k] += len(ms)
        right[k] += sum(m in sets[k] for m in ms)
  out = {k: 100.0 * right[k] / named[k] if named[k] else float("nan") for k in ACCURACY_FIELDS}
  out["words_per_text"] = n_words / n_texts if n_texts else float("nan")
  out["texts"] = float(n_texts)
  return out


def _unit_rows(version_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
  """clip id -> caption row of a finished auto-labeling version."""
  return {row["clip_id"]: row for row in caption_sets.caption_rows(version_dir)}


def _world_clips(world: pathlib.Path) -> dict[str, dict[str, Any]]:
  """The world's ground-truth records by file (relative to the world root)."""
  if not (world / "world" / "clips.jsonl").is_file():
    return {}
  return {rec["file"]: rec for rec in demo_world.read_records(world)}


@dataclasses.dataclass(frozen=True)
class Pool:
  """The pool's auto-label rows (clip id -> row) of both labelers and the world's ground truth
  (world file -> record), read once per report."""
  world: pathlib.Path
  viit: dict[str, dict[str, Any]]
  frames: dict[str, dict[str, Any]]
  truth: dict[str, dict[str, Any]]

  @staticmethod
  def file_of(row: Mapping[str, Any]) -> str:
    return f"webvid/{row['path']}"  # The pool's rows are relative to <world>/webvid.


def read_pool(workdir: pathlib.Path, cfg: Mapping[str, Any]) -> Pool:
  world = ph.world_dir(cfg, workdir)
  return Pool(world=world, viit=_unit_rows(workdir / ph.LABEL_VIIT / "v1"),
              frames=_unit_rows(workdir / ph.LABEL_FRAMES / "v1"), truth=_world_clips(world))


def pool_texts(pool: Pool) -> dict[str, dict[str, list[str]]]:
  """The pool's three training texts (SOURCE_NAMES' keys): clip file -> its texts."""
  f = pool.file_of
  return {"alt_text": {f(r): [r["alt_text"]] for r in pool.viit.values()},
          "frame_captions": {f(r): r["captions"] for r in pool.frames.values()},
          "viit": {f(r): r["captions"] for r in pool.viit.values()}}


def pool_caption_accuracy(pool: Pool) -> dict[str, dict[str, float]]:
  """caption_accuracy of the three training texts of the pool (alt-text, frame, VIIT captions)."""
  return {source: caption_accuracy(texts, pool.truth) for source, texts in pool_texts(pool).items()}


def pool_change_carried(pool: Pool) -> dict[str, dict[str, dict[str, float]]]:
  """change_carried of the three training texts of the pool."""
  return {source: change_carried(texts, pool.truth) for source, texts in pool_texts(pool).items()}


def accuracy_rows(acc: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
  return [[SOURCE_NAMES[s], *(fmt(a[k]) for k in ACCURACY_FIELDS), fmt(a["words_per_text"])]
          for s, a in acc.items()]


ACCURACY_HEADER = ["training text", *(f"{v} right %" for v in ACCURACY_FIELDS.values()),
                   "words per text"]
ACCURACY_NOTE = ("Of the colour, shape, direction and event words a pool clip's text names, the "
                 "share true of that clip by the world's script (any actor, any event); frame "
                 "captions are the joined captions of 4 frames.")


# ------------------------------------------------------------------------------------------------
# Whether each training text carries what happens in a one-actor one-event pool clip: its change of
# state in time order, or the event's name. Joined frame captions can say a change without a verb
# ("a red circle; ...; a blue circle"), so event-word precision alone undersells them.

SIZE_STATES = {w: size for size, ws in demo_world.SIZE_WORDS.items() for w in ws}  # word -> size
ORDERED_KINDS = ("change_colour", "grow", "shrink")  # Changes whose two states texts can spell out.


def _before_after(event: Mapping[str, Any]) -> tuple[str, str, Mapping[str, str]]:
  """(state before, state after, word -> state) of an event of ORDERED_KINDS."""
  if event["kind"] == "change_colour":
    return event["from"], event["to"], {c: c for c in demo_world.COLOURS}
  before, after = ("small", "big") if event["kind"] == "grow" else ("big", "small")
  return before, after, SIZE_STATES


def _in_order(words: Sequence[str], before: str, after: str, states: Mapping[str, str]) -> bool:
  """The text names `before`, and `after` at a later word."""
  seq = [states[w] for w in words if w in states]
  return before in seq and after in seq[seq.index(before) + 1:]


def _named(words: Sequence[str], event: Mapping[str, Any]) -> bool:
  """A word names the event's kind (a colour change: and its end colour is named)."""
  return (event["kind"] in _event_kinds(words)
          and (event["kind"] != "change_colour" or event["to"] in words))


def change_carried(texts: Mapping[str, Sequence[str]], truth: Mapping[str, Mapping[str, Any]]
                   ) -> dict[str, dict[str, float]]:
  """Per event kind (world order), over the texts of clips with one actor and one event: the share
  (%) naming the state before and the state after in that order (ORDERED_KINDS; NaN for the
  others), the share naming the event, and the number of texts. `texts`: clip file -> its texts;
  `truth`: clip file -> world record.
  """
  counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for clip, ts in texts.items():
    rec = truth.get(clip)
    if rec is None or len(rec["actors"]) != 1 or len(rec["events"]) != 1:
      continue
    event = rec["events"][0]
    c = counts[event["kind"]]
    for t in ts:
      words = WORD_RE.findall(t.lower())
      c["texts"] += 1
      c["in_order"] += event["kind"] in ORDERED_KINDS and _in_order(words, *_before_after(event))
      c["named"] += _named(words, event)
  return {kind: {"in_order": (100.0 * c["in_order"] / c["texts"] if kind in ORDERED_KINDS
                              else float("nan")),
                 "named": 100.0 * c["named"] / c["texts"], "texts": float(c["texts"])}
          for kind in demo_world.EVENT_KINDS if (c := counts.get(kind))}


SHORT_NAMES = {"alt_text": "alt-text", "frame_captions": "frame captions", "viit": "VIIT"}
CHANGE_HEADER = ["event (one actor)", "clips",
                 *(f"{name}: {what}" for name in SHORT_NAMES.values()
                   for what in ("before -> after %", "named %"))]
CHANGE_NOTE = ("Pool clips with one actor and one event, by the event: the share of each text that "
               "names the state before and the state after in that order (the colours of a colour "
               "change, the sizes of a grow or shrink) and the share that names the event (its "
               "verb; for a colour change with its end colour). Joined frame captions can spell a "
               "change out across frames; a VIIT caption has to name it.")


def change_rows(carried: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[list[str]]:
  """A row per event kind of pool_change_carried: clips, then each source's two shares."""
  return [[kind.replace("_", " "), f"{carried['alt_text'][kind]['texts']:.0f}",
           *(fmt(carried[s].get(kind, {}).get(k)) for s in SHORT_NAMES
             for k in ("in_order", "named"))]
          for kind in carried["alt_text"]]


# ------------------------------------------------------------------------------------------------
# How far each kind of fact goes on the retrieval test set: the R@K of a retriever that knows exactly
# those facts of every test clip and nothing else (tied clips in random order).

def _appearance(clip: Mapping[str, Any], fields: Sequence[str]) -> list[list[str]]:
  return sorted([a[f] for f in fields] for a in clip["actors"])


def _events(clip: Mapping[str, Any]) -> list[list[str]]:
  return [[e["kind"], e.get("direction") or e.get("wall") or e.get("to") or ""]
          for e in clip["events"]]


# Fact set -> the facts of one clip (its world record) that such a retriever matches on.
ORACLE_FACTS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "colours": lambda c: _appearance(c, ("colour",)),
    "colours + sizes": lambda c: _appearance(c, ("colour", "size")),
    "colours + shapes": lambda c: _appearance(c, ("colour", "shape")),
    "appearance (colour, shape, size)": lambda c: _appearance(c, ("colour", "shape", "size")),
    "events (kind and direction, in order)": _events,
    "colours + events": lambda c: [_appearance(c, ("colour",)), _events(c)],
    "appearance + events (the whole script)": lambda c: [
        _appearance(c, ("colour", "shape", "size")), _events(c)],
}
ORACLE_KS = (1, 5)
ORACLE_NOTE = ("A retriever that knows exactly these facts of every clip (from the world's script) "
               "ranks first the clips that share the query clip's facts, in random order: expected "
               "R@K = mean over the test clips of min(K, n) / n, n = the clips with the same facts. "
               "The dual encoders' R@1 above is to be read against these.")


def oracle_recall(truth: Mapping[str, Mapping[str, Any]], files: Sequence[str]
                  ) -> dict[str, dict[str, float]]:
  """Expected text-to-video R@K (%) of a fact-set oracle over the test clips `files` (world files,
  keys of `truth`): {fact set: {"R@1": ..., "R@5": ..., "groups": distinct fact tuples}}."""
  recs = [truth[f] for f in files if f in truth]
  out: dict[str, dict[str, float]] = {}
  for name, facts in ORACLE_FACTS.items():
    keys = [json.dumps(facts(r)) for r in recs]
    count = collections.Counter(keys)
    row = {f"R@{k}": 100.0 * sum(min(k, count[x]) / count[x] for x in keys) / len(keys)
           if keys else float("nan") for k in ORACLE_KS}
    row["groups"] = float(len(count))
    out[name] = row
  return out


def retrieval_test_pairs(world: pathlib.Path) -> list[tuple[str, str]]:
  """(world file, query sentence) of each 1k-A-style retrieval test pair
  (MSRVTT_JSFUSION_test.csv)."""
  pairs = readers.read_msrvtt_1ka(world / "msrvtt", rejects=rejects.Rejects("report 1k-A"),
                                  check_files=False)
  return [(p.path.relative_to(world).as_posix(), p.sentence) for p in pairs]


# What the query's own words are worth: a retriever that reads the facts a test query names and
# ranks first the test clips that have every one of them. It bounds a dual encoder that has learned
# exactly those kinds of fact, which the clip-side table above (every fact of the clip) does not.
QUERY_FACTS: dict[str, tuple[str, ...]] = {  # name -> attributes a mention keeps
    "colours": ("colour",),
    "colours + sizes": ("colour", "size"),
    "colours + shapes": ("colour", "shape"),
    "appearance (colour, shape, size)": ("colour", "shape", "size"),
    "appearance + directions": ("colour", "shape", "size", "direction"),
}
QUERY_ORACLE_NOTE = (
    "A retriever that reads these kinds of fact from each test query's words (a colour word with "
    "the size word before it and a shape word within two words after it; a direction word after a "
    "verb of motion) and ranks first, in random order, the test clips that have every named fact "
    "(an actor with that colour, at any time, and that shape and size; a move, bounce or stop that "
    "way): expected R@K = mean of min(K, n) / n. This bounds a dual encoder that has learned "
    "exactly those facts.")


def query_mentions(sentence: str) -> tuple[list[dict[str, str]], set[str]]:
  """(actor mentions {colour, size?, shape?}, motion directions) a query sentence names."""
  sizes = {w: size for size, ws in demo_world.SIZE_WORDS.items() for w in ws}
  words = WORD_RE.findall(sentence.lower())
  mentions = []
  for i, w in enumerate(words):
    if w in demo_world.COLOURS:
      m = {"colour": w}
      if i and words[i - 1] in sizes:
        m["size"] = sizes[words[i - 1]]
      shape = next((x for x in words[i + 1:i + 3] if x in demo_world.SHAPES), None)
      if shape:
        m["shape"] = shape
      mentions.append(m)
  directions = set()
  for i, w in enumerate(words):  # "moves left", "is going to the left", "slid upwards"
    j = i - 3 if words[max(i - 2, 0):i] == ["to", "the"] else i - 1
    if w in DIRECTION_WORDS and j >= 0 and words[j].startswith(EVENT_STEMS["move"]):
      directions.add(DIRECTION_WORDS[w])
  return mentions, directions


def _clip_facts(clip: Mapping[str, Any]) -> tuple[list[dict[str, set[str]]], set[str]]:
  """Per actor its colours / sizes over the clip and its shape; the clip's motion directions."""
  actors = [{"colour": {a["colour"]}, "size": {a["size"]}, "shape": {a["shape"]}}
            for a in clip["actors"]]
  for e in clip["events"]:
    a = actors[e["actor"]] if "actor" in e and e["actor"] < len(actors) else None
    if a is not None and e["kind"] == "change_colour" and e.get("to"):
      a["colour"].add(e["to"])
    if a is not None and e["kind"] in ("grow", "shrink"):
      a["size"] |= {"big", "small"}
  return actors, {e["direction"] for e in clip["events"] if e.get("direction")}


def _has(clip_facts: tuple[list[dict[str, set[str]]], set[str]], mentions: Sequence[dict[str, str]],
         directions: set[str]) -> bool:
  """Whether a clip has every named fact: each mention matches one of its actors, each direction
  one of its motions."""
  actors, dirs = clip_facts
  return directions <= dirs and all(
      any(all(v in a[k] for k, v in m.items()) for a in actors) for m in mentions)


def query_oracle_recall(truth: Mapping[str, Mapping[str, Any]], pairs: Sequence[tuple[str, str]]
                        ) -> dict[str, dict[str, float]]:
  """Expected text-to-video R@K (%) of the query-side oracle over the test `pairs` (world file,
  sentence): {fact kind: {"R@1": ..., "R@5": ..., "candidates": mean n}}."""
  pairs = [(f, q) for f, q in pairs if f in truth]
  facts = {f: _clip_facts(truth[f]) for f, _ in pairs}
  named = [query_mentions(q) for _, q in pairs]
  out: dict[str, dict[str, float]] = {}
  for name, keep in QUERY_FACTS.items():
    sums: collections.Counter[str] = collections.Counter()
    for (f, _), (mentions, directions) in zip(pairs, named):
      mentions = [{k: v for k, v in m.items() if k in keep} for m in mentions]
      directions = directions if "direction" in keep else set()
      n = max(sum(_has(facts[g], mentions, directions) for g, _ in pairs), 1)  # >= its own clip
      for k in ORACLE_KS:
        sums[f"R@{k}"] += min(k, n) / n if _has(facts[f], mentions, directions) else 0.0
      sums["candidates"] += n
    out[name] = {k: (100.0 if k.startswith("R@") else 1.0) * v / max(len(pairs), 1)
                 for k, v in sums.items()}
  return out


def query_oracle_rows(oracle: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
  return [[name, *(fmt(o[f"R@{k}"]) for k in ORACLE_KS), f"{o['candidates']:.1f}"]
          for name, o in oracle.items()]


QUERY_ORACLE_HEADER = ["facts the query names", *(f"R@{k}" for k in ORACLE_KS),
                       "clips that have them (mean)"]


def oracle_rows(oracle: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
  return [[name, *(fmt(o[f"R@{k}"]) for k in ORACLE_KS), f"{o['groups']:.0f}"]
          for name, o in oracle.items()]


ORACLE_HEADER = ["facts known", *(f"R@{k}" for k in ORACLE_KS), "distinct"]
