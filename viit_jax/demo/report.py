"""The demo pipeline's report: the paper's Tables 3 and 4 in miniature, the claims, plots, examples.

  python -m viit_jax.report --workdir=runs/demo

Reads only what the phases wrote into the pipeline workdir (layout: viit_jax/pipeline.py):
  eval_*/metrics.json        every number in the tables and the claims (viit_jax.evaluate)
  phase*/metrics.jsonl, de_*/metrics.jsonl   loss curves (the trainers' JSONL metrics)
  label_viit/v1, label_frames/v1             captions of the example clips (viit_jax.autolabel)
  world/                     the example clips' mp4 files and their ground truth (for the reader only;
                             also the caption-accuracy and fact-oracle tables)
  timings.json               phase wall / CPU times (viit_jax.pipeline)
and writes
  report.md, report.html     (the HTML is self-contained: images inlined as base64)
  report_files/*.png         loss curves, recall chart, frame strips (report.md links them)
  claims.json                the two claims: verdict HOLDS / FAILS, the numbers, the margins; the
                             caption accuracy and the fact-oracle recall

The claims (the paper's, in miniature, on held-out clips):
  1. the phase-2 (VIIT) model beats the unadapted image model (phase 0 run on 8 frames) on
     MSR-VTT-style captioning CIDEr AND on NExT-OE WUPS;
  2. text-to-video R@1 on the 1k-A-style set: dual encoder trained on VIIT captions > on frame
     captions > on alt-text.
A claim HOLDS only when every one of its margins is at least MIN_MARGIN points (a clear margin, not
a tie: 1 R@1 point is 4 of the demo's 400 queries); else it FAILS.
"""
from __future__ import annotations

import base64
import collections
import dataclasses
import html
import json
import math
import pathlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from viit_jax import pipeline as pl

FILES_DIR = "report_files"
CLAIMS_FILE = "claims.json"
NUM_EXAMPLES = 4

# Where each reported number sits in an evaluation's metrics.json (viit_jax/evaluate.py; x100).
MetricPath = tuple[str, ...]
VLM_METRICS: dict[str, MetricPath] = {
    "cider": ("tasks", "msrvtt_caption", "metrics", "CIDEr"),
    "qa": ("tasks", "msrvtt_qa", "metrics", "accuracy"),
    "wups": ("tasks", "nextqa_oe", "metrics", "WUPS@0")}
VLM_COLUMNS = {"cider": "MSR-VTT-style CIDEr", "qa": "QA accuracy*", "wups": "NExT-OE WUPS@0"}
DE_METRICS: dict[str, MetricPath] = {
    "r1": ("tasks", "msrvtt_retrieval", "metrics", "t2v/R@1"),
    "r5": ("tasks", "msrvtt_retrieval", "metrics", "t2v/R@5"),
    "r10": ("tasks", "msrvtt_retrieval", "metrics", "t2v/R@10")}
# Shown when the evaluation has it (eval.tasks may leave it out).
KINETICS_TOP1: MetricPath = ("tasks", "kinetics_zero_shot", "metrics", "top1")

# The paper's numbers (PAPER.md): Table 3 (PaLI-3 based VLM) and Table 4 (MSR-VTT t2v R@1).
PAPER_TABLE3 = {"eval_image": {"cider": 21.3, "qa": 12.7, "wups": 23.2},
                "eval_phase1": None,  # The paper reports no phase-1-only row in Table 3.
                "eval_phase2": {"cider": 48.2, "qa": 24.4, "wups": 29.5}}
PAPER_TABLE4 = {"alt_text": ("alt-text", 37.0),
                "frame_captions": ("image captioner on frames", 39.5),
                "viit": ("VIIT captions (full method)", 44.3)}
QA_NOTE = ("QA accuracy: the demo world has no MSR-VTT-QA set; exact match on the NExT-OE short "
           "answers stands in for it (viit_jax/evaluate.py). The paper's column is MSR-VTT-QA.")
SOURCE_NAMES = {"alt_text": "alt-text", "frame_captions": "frame captions (image model, T=1)",
                "viit": "VIIT captions (phase-2 VLM)"}


# ------------------------------------------------------------------------------------------------
# Numbers.


def lookup(metrics: Mapping[str, Any], path: MetricPath) -> float:
  """The number at `path` of a metrics.json tree; KeyError names what is there."""
  node: Any = metrics
  for part in path:
    if not isinstance(node, Mapping) or part not in node:
      have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
      raise KeyError(f"metrics.json has no {'/'.join(path)!r} (at {part!r}; keys there: {have})")
    node = node[part]
  return float(node)


def has(metrics: Mapping[str, Any], path: MetricPath) -> bool:
  try:
    lookup(metrics, path)
  except KeyError:
    return False
  return True


def load_metrics(workdir: pathlib.Path, phase: str) -> dict[str, Any]:
  path = workdir / phase / "metrics.json"
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing: run the pipeline's {phase} phase first")
  return json.loads(path.read_text())


@dataclasses.dataclass(frozen=True)
class Numbers:
  """Every number the report shows, each read from an eval phase's metrics.json."""
  vlm: dict[str, dict[str, float]]  # eval phase -> {cider, qa, wups}
  de: dict[str, dict[str, float]]  # caption source -> {r1, r5, r10[, kinetics_top1]}
  files: dict[str, str]  # eval phase -> metrics.json path


def read_numbers(workdir: pathlib.Path) -> Numbers:
  vlm, de, files = {}, {}, {}
  for phase in pl.VLM_EVALS:
    m = load_metrics(workdir, phase)
    vlm[phase] = {k: lookup(m, p) for k, p in VLM_METRICS.items()}
    files[phase] = str(workdir / phase / "metrics.json")
  for source, de_phase in pl.DUAL_ENCODERS.items():
    phase = f"eval_{de_phase}"
    m = load_metrics(workdir, phase)
    de[source] = {k: lookup(m, p) for k, p in DE_METRICS.items()}
    if has(m, KINETICS_TOP1):
      de[source]["kinetics_top1"] = lookup(m, KINETICS_TOP1)
    files[phase] = str(workdir / phase / "metrics.json")
  return Numbers(vlm=vlm, de=de, files=files)


def fmt(x: float | None) -> str:
  """The one number format of the report's tables (tests parse it back)."""
  return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


# The least margin (points of CIDEr, WUPS and R@1) with which a claim's comparison counts as won.
MIN_MARGIN = 1.0


def claims(n: Numbers) -> list[dict[str, Any]]:
  """The two claims with verdicts, values and margins (see the module docstring)."""
  img, full = n.vlm["eval_image"], n.vlm["eval_phase2"]
  d_cider, d_wups = full["cider"] - img["cider"], full["wups"] - img["wups"]
  ok1 = d_cider >= MIN_MARGIN and d_wups >= MIN_MARGIN
  r = {s: n.de[s]["r1"] for s in ("viit", "frame_captions", "alt_text")}
  m_vf, m_fa = r["viit"] - r["frame_captions"], r["frame_captions"] - r["alt_text"]
  ok2 = m_vf >= MIN_MARGIN and m_fa >= MIN_MARGIN
  need = f"; each margin must be >= {MIN_MARGIN:g}"
  return [
      {"id": 1, "verdict": "HOLDS" if ok1 else "FAILS",
       "statement": "the phase-2 (VIIT) model beats the unadapted image model (8 frames) on "
                    "MSR-VTT-style CIDEr and on NExT-OE WUPS",
       "values": {"cider_phase2": full["cider"], "cider_image": img["cider"],
                  "wups_phase2": full["wups"], "wups_image": img["wups"]},
       "margins": {"cider": d_cider, "wups": d_wups},
       "evidence": f"CIDEr {fmt(full['cider'])} vs {fmt(img['cider'])} ({d_cider:+.1f}); "
                   f"WUPS {fmt(full['wups'])} vs {fmt(img['wups'])} ({d_wups:+.1f}){need}"},
      {"id": 2, "verdict": "HOLDS" if ok2 else "FAILS",
       "statement": "text-to-video R@1 on the 1k-A-style set: VIIT captions > frame captions > "
                    "alt-text",
       "values": {f"r1_{s}": v for s, v in r.items()},
       "margins": {"viit_minus_frames": m_vf, "frames_minus_alt_text": m_fa},
       "evidence": f"R@1 {fmt(r['viit'])} > {fmt(r['frame_captions'])} > {fmt(r['alt_text'])} "
                   f"(margins {m_vf:+.1f}, {m_fa:+.1f}){need}"},
  ]


# ------------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg).


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def read_jsonl_metrics(path: pathlib.Path) -> list[dict[str, Any]]:
  """The trainer's metrics.jsonl records; a resumed run's repeated steps keep the last record."""
  if not path.is_file():
    return []
  by_step: dict[tuple[int, bool], dict[str, Any]] = {}
  for line in path.read_text().splitlines():
    if line.strip():
      rec = json.loads(line)
      by_step[(int(rec["step"]), any(k.startswith("eval/") for k in rec))] = rec
  return [by_step[k] for k in sorted(by_step)]


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
  pts = [(int(r["step"]), float(r[key])) for r in records if key in r]
  return [p[0] for p in pts], [p[1] for p in pts]


def plot_losses(workdir: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  plt = _plt()
  panels = [("phase0", "phase 0: image-text (stills)"), ("phase1", "phase 1: visual adaptation"),
            ("phase2", "phase 2: VIIT")]
  fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
  for ax, (phase, title) in zip(axes, panels):
    recs = read_jsonl_metrics(workdir / phase / "metrics.jsonl")
    for key, label, style in (("train/loss", "train", "-"), ("eval/loss", "held-out", "o--")):
      x, y = _series(recs, key)
      if x:
        ax.plot(x, y, style, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("token NLL")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  ax = axes[3]
  for source, phase in pl.DUAL_ENCODERS.items():
    x, y = _series(read_jsonl_metrics(workdir / phase / "metrics.jsonl"), "train/loss")
    if x:
      ax.plot(x, y, label=SOURCE_NAMES[source].split(" (")[0])
  ax.set_title("dual encoders (InfoNCE)", fontsize=10)
  ax.set_xlabel("step")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  path = out / "losses.png"
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def plot_recall(n: Numbers, out: pathlib.Path) -> pathlib.Path:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 3.6))
  sources = list(pl.DUAL_ENCODERS)
  width = 0.26
  for j, (k, label) in enumerate((("r1", "R@1"), ("r5", "R@5"), ("r10", "R@10"))):
    vals = [n.de[s][k] for s in sources]
    bars = ax.bar(np.arange(len(sources)) + (j - 1) * width, vals, width, label=label)
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
  ax.set_xticks(np.arange(len(sources)), [SOURCE_NAMES[s].split(" (")[0] for s in sources])
  ax.set_ylabel("text-to-video recall (%)")
  ax.set_title("1k-A-style retrieval by the dual encoder's training captions", fontsize=10)
  ax.legend(fontsize=8)
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  path = out / "recall.png"
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


# ------------------------------------------------------------------------------------------------
# Example clips: frame strips with their three kinds of text.


def _unit_rows(version_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
  rows: dict[str, dict[str, Any]] = {}
  for path in sorted((version_dir / "units").glob("unit-*.jsonl")):
    if path.name.endswith(".rejects.jsonl"):
      continue
    for line in path.read_text().splitlines():
      if line.strip():
        row = json.loads(line)
        rows[row["clip_id"]] = row
  return rows


def _world_clips(world: pathlib.Path) -> dict[str, dict[str, Any]]:
  """The world's ground-truth records by file (relative to the world root)."""
  from data import demo_world  # pylint: disable=g-import-not-at-top
  if not (world / "world" / "clips.jsonl").is_file():
    return {}
  return {rec["file"]: rec for rec in demo_world.read_records(world)}


# ------------------------------------------------------------------------------------------------
# Caption accuracy against the world's script: what each training text gets right about a pool clip.

WORD_RE = re.compile(r"[a-z]+")
DIRECTION_WORDS = {"left": "left", "leftwards": "left", "right": "right", "rightwards": "right",
                   "up": "up", "upwards": "up", "top": "up", "down": "down", "downwards": "down",
                   "bottom": "down"}
# Event kind -> word stems that name it (the world's phrasings, data/demo_world.py).
EVENT_STEMS = {"move": ("mov", "slid", "travel", "going", "goes"),
               "grow": ("grow", "bigger", "larger"), "shrink": ("shrink", "smaller"),
               "appear": ("appear", "popping", "showing"),
               "disappear": ("disappear", "fad", "vanish"),
               "change_colour": ("turn", "chang", "becom"), "bounce": ("bounc",),
               "stop": ("stop",)}
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


def _mentions(text: str, colours: Sequence[str], shapes: Sequence[str]) -> dict[str, list[str]]:
  words = WORD_RE.findall(text.lower())
  return {"colour": [w for w in words if w in colours],
          "shape": [w for w in words if w in shapes],
          "direction": [DIRECTION_WORDS[w] for w in words if w in DIRECTION_WORDS],
          "event": [k for w in words for k, stems in EVENT_STEMS.items()
                    if any(w.startswith(st) for st in stems)]}


def caption_accuracy(texts: Mapping[str, Sequence[str]], truth: Mapping[str, Mapping[str, Any]]
                     ) -> dict[str, float]:
  """Precision (%) of each kind of word over clips' texts: of the colour / shape / direction /
  event words a text names, the share that is true of its clip (any actor, any event); plus
  words per text. `texts`: clip file -> its texts; `truth`: clip file -> world record.
  """
  from data import demo_world  # pylint: disable=g-import-not-at-top  (the world's vocabulary)
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
  world = pl.world_dir(cfg, workdir)
  return Pool(world=world, viit=_unit_rows(workdir / pl.LABEL_VIIT / "v1"),
              frames=_unit_rows(workdir / pl.LABEL_FRAMES / "v1"), truth=_world_clips(world))


def pool_caption_accuracy(pool: Pool) -> dict[str, dict[str, float]]:
  """caption_accuracy of the three training texts of the pool (alt-text, frame, VIIT captions)."""
  f = pool.file_of
  return {"alt_text": caption_accuracy({f(r): [r["alt_text"]] for r in pool.viit.values()},
                                       pool.truth),
          "frame_captions": caption_accuracy({f(r): r["captions"] for r in pool.frames.values()},
                                             pool.truth),
          "viit": caption_accuracy({f(r): r["captions"] for r in pool.viit.values()}, pool.truth)}


def accuracy_rows(acc: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
  return [[SOURCE_NAMES[s], *(fmt(a[k]) for k in ACCURACY_FIELDS), fmt(a["words_per_text"])]
          for s, a in acc.items()]


ACCURACY_HEADER = ["training text", *(f"{v} right %" for v in ACCURACY_FIELDS.values()),
                   "words per text"]
ACCURACY_NOTE = ("Of the colour, shape, direction and event words a pool clip's text names, the "
                 "share true of that clip by the world's script (any actor, any event); frame "
                 "captions are the joined captions of 4 frames.")


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
  from data import readers, rejects  # pylint: disable=g-import-not-at-top
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
  from data import demo_world  # pylint: disable=g-import-not-at-top  (the world's vocabulary)
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


@dataclasses.dataclass(frozen=True)
class Example:
  clip_id: str
  strip: pathlib.Path
  alt_text: str
  frame_captions: list[str]
  viit_captions: list[str]
  ground_truth: str
  pair_id: int | None


def examples(pool: Pool, out: pathlib.Path, count: int = NUM_EXAMPLES) -> list[Example]:
  """Pool clips captioned by both labelers, as 8-frame strips (2 fps): a same-middle-frame pair
  first when the pool has one (one frame cannot tell their captions apart), then the first clips.
  """
  from data import video  # pylint: disable=g-import-not-at-top  (PyAV; only needed here)
  plt = _plt()
  viit, frames = pool.viit, pool.frames
  pool_root = pool.world / "webvid"
  both = [c for c in viit if c in frames]
  gt = {c: pool.truth.get(pool.file_of(viit[c]), {}) for c in both}
  by_pair: dict[Any, list[str]] = {}
  for c in both:
    if gt[c].get("pair_id") is not None:
      by_pair.setdefault(gt[c]["pair_id"], []).append(c)
  pair = next((v[:2] for v in by_pair.values() if len(v) >= 2), [])
  chosen = (pair + [c for c in both if c not in pair])[:count]
  result = []
  for cid in chosen:
    row = viit[cid]
    pixels = video.decode_frames(pool_root / row["path"], num_frames=8, fps=2.0, res=64)
    strip = np.concatenate([np.pad(f, ((0, 0), (0, 2), (0, 0)), constant_values=255)
                            for f in pixels], axis=1)
    path = out / f"clip_{cid}.png"
    plt.imsave(path, strip)
    result.append(Example(clip_id=cid, strip=path, alt_text=row["alt_text"],
                          frame_captions=list(frames[cid]["captions"]),
                          viit_captions=list(row["captions"]),
                          ground_truth=gt[cid].get("caption_canonical", ""),
                          pair_id=gt[cid].get("pair_id")))
  return result


# ------------------------------------------------------------------------------------------------
# Markdown and HTML.


def table3_rows(n: Numbers) -> list[list[str]]:
  rows = []
  for phase, (_, name) in pl.VLM_EVALS.items():
    paper = PAPER_TABLE3[phase]
    cells = [name]
    for k in VLM_METRICS:
      cells += [fmt(n.vlm[phase][k]), fmt(paper[k]) if paper else "-"]
    rows.append(cells)
  return rows


PAPER_COLUMNS = {"cider": "paper MSR-VTT CIDEr", "qa": "paper MSR-VTT-QA",
                 "wups": "paper NExT-OE WUPS"}
TABLE3_HEADER = ["model"] + [h for k in VLM_METRICS for h in (VLM_COLUMNS[k], PAPER_COLUMNS[k])]
TABLE4_HEADER = ["dual encoder trained on", "R@1", "R@5", "R@10", "paper R@1 (text source)",
                 "Kinetics-style zero-shot top-1"]


def table4_rows(n: Numbers) -> list[list[str]]:
  rows = []
  for source in pl.DUAL_ENCODERS:
    paper_name, paper_r1 = PAPER_TABLE4[source]
    d = n.de[source]
    rows.append([SOURCE_NAMES[source], fmt(d["r1"]), fmt(d["r5"]), fmt(d["r10"]),
                 f"{paper_r1:.1f} ({paper_name})", fmt(d.get("kinetics_top1"))])
  return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
  return ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)] + [
      "| " + " | ".join(map(esc, r)) + " |" for r in rows]


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
  body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def _timing_rows(workdir: pathlib.Path) -> list[list[str]]:
  rows = []
  for phase in [p for p in _phase_names()]:
    marker = pl.read_marker(workdir, phase)
    if marker is not None:
      rows.append([phase, pl._fmt_s(marker["wall_s"]), pl._fmt_s(marker["cpu_s"]),  # pylint: disable=protected-access
                   marker["what"]])
  return rows


def _phase_names() -> list[str]:
  return ([pl.WORLD, "phase0", "phase1", pl.VIIT_DATA, "phase2", pl.LABEL_VIIT, pl.LABEL_FRAMES]
          + list(pl.DUAL_ENCODERS.values()) + list(pl.VLM_EVALS) + list(pl.DE_EVALS))


def _config(workdir: pathlib.Path) -> dict[str, Any]:
  path = workdir / pl.CONFIG_FILE
  return json.loads(path.read_text()) if path.is_file() else {}


def write(workdir: str | pathlib.Path) -> dict[str, Any]:
  """Writes report.md, report.html, report_files/ and claims.json; returns the claims record."""
  w = pathlib.Path(workdir).resolve()
  out = w / FILES_DIR
  out.mkdir(parents=True, exist_ok=True)
  n = read_numbers(w)
  cl = claims(n)
  cfg = _config(w)
  pool = read_pool(w, cfg)
  acc = pool_caption_accuracy(pool)
  test_pairs = retrieval_test_pairs(pool.world)
  oracle = oracle_recall(pool.truth, [f for f, _ in test_pairs])
  query_oracle = query_oracle_recall(pool.truth, test_pairs)
  record = {"seed": cfg.get("seed"), "preset": cfg.get("preset"), "claims": cl,
            "numbers": {"vlm": n.vlm, "dual_encoder": n.de}, "caption_accuracy": acc,
            "fact_oracle_recall": oracle, "query_oracle_recall": query_oracle,
            "metrics_files": n.files}
  (w / CLAIMS_FILE).write_text(json.dumps(record, indent=1))
  losses, recall = plot_losses(w, out), plot_recall(n, out)
  exs = examples(pool, out)
  timing = _timing_rows(w)

  title = f"viit_jax demo: the method end to end (seed {cfg.get('seed')}, preset {cfg.get('preset')})"
  t3, t4 = table3_rows(n), table4_rows(n)
  rel = lambda p: f"{FILES_DIR}/{p.name}"  # noqa: E731
  md = [f"# {title}", "",
        "Every number below is read from the `metrics.json` of an evaluation phase "
        "(held-out clips: the MSR-VTT-style test split, the 1k-A-style pairs and NExT-QA OE). "
        "The paper's numbers (PaLI-3 scale, real data) are beside them for the shape of the "
        "result, not for the values.", "", "## Claims", ""]
  for c in cl:
    md.append(f"- **{c['verdict']}** ({c['id']}) {c['statement']}: {c['evidence']}")
  md += ["", "## Table 3 (video-language model, zero-shot)", "", *_md_table(TABLE3_HEADER, t3),
         "", "\\* " + QA_NOTE, "",
         "## Table 4 (dual encoder, text-to-video retrieval on the 1k-A-style set)", "",
         *_md_table(TABLE4_HEADER, t4), "", f"![recall]({rel(recall)})", "",
         "### What each kind of fact is worth on this test set", "",
         *_md_table(ORACLE_HEADER, oracle_rows(oracle)), "", ORACLE_NOTE, "",
         "### What the queries' words are worth", "",
         *_md_table(QUERY_ORACLE_HEADER, query_oracle_rows(query_oracle)), "",
         QUERY_ORACLE_NOTE, "",
         "## What the training texts get right (pool clips vs the world's script)", "",
         *_md_table(ACCURACY_HEADER, accuracy_rows(acc)), "", ACCURACY_NOTE, "",
         "## Loss curves", "", f"![losses]({rel(losses)})", "",
         "## Example pool clips (8 frames at 2 fps) and their training texts", ""]
  for e in exs:
    pair = f" (same-middle-frame pair {e.pair_id})" if e.pair_id is not None else ""
    md += [f"### {e.clip_id}{pair}", "", f"![{e.clip_id}]({rel(e.strip)})", "",
           *_md_table(["text source", "text"],
                      [["alt-text", e.alt_text],
                       *[[f"frame captions #{i + 1}", t] for i, t in enumerate(e.frame_captions)],
                       *[[f"VIIT caption #{i + 1}", t] for i, t in enumerate(e.viit_captions)],
                       ["ground truth (world script; no model sees it)", e.ground_truth]]), ""]
  md += ["## Phase timings", "", *_md_table(["phase", "wall", "CPU", "what"], timing), "",
         "## Sources", "", *[f"- {k}: `{v}`" for k, v in n.files.items()], ""]
  (w / "report.md").write_text("\n".join(md))

  def img(p: pathlib.Path, alt: str) -> str:
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

  body = [f"<h1>{html.escape(title)}</h1>",
          "<p>Every number is read from the <code>metrics.json</code> of an evaluation phase "
          "(held-out clips). The paper's numbers are beside them for the shape of the result.</p>",
          "<h2>Claims</h2><ul>"]
  for c in cl:
    colour = "#176117" if c["verdict"] == "HOLDS" else "#a11"
    body.append(f'<li><b style="color:{colour}">{c["verdict"]}</b> ({c["id"]}) '
                f'{html.escape(c["statement"])}: {html.escape(c["evidence"])}</li>')
  body += ["</ul>", "<h2>Table 3 (video-language model, zero-shot)</h2>",
           _html_table(TABLE3_HEADER, t3), f"<p><small>* {html.escape(QA_NOTE)}</small></p>",
           "<h2>Table 4 (dual encoder, text-to-video retrieval, 1k-A-style set)</h2>",
           _html_table(TABLE4_HEADER, t4), img(recall, "recall chart"),
           "<h3>What each kind of fact is worth on this test set</h3>",
           _html_table(ORACLE_HEADER, oracle_rows(oracle)),
           f"<p><small>{html.escape(ORACLE_NOTE)}</small></p>",
           "<h3>What the queries' words are worth</h3>",
           _html_table(QUERY_ORACLE_HEADER, query_oracle_rows(query_oracle)),
           f"<p><small>{html.escape(QUERY_ORACLE_NOTE)}</small></p>",
           "<h2>What the training texts get right (pool clips vs the world's script)</h2>",
           _html_table(ACCURACY_HEADER, accuracy_rows(acc)),
           f"<p><small>{html.escape(ACCURACY_NOTE)}</small></p>", "<h2>Loss curves</h2>",
           img(losses, "loss curves"), "<h2>Example pool clips and their training texts</h2>"]
  for e in exs:
    rows = [["alt-text", e.alt_text],
            *[[f"frame captions #{i + 1}", t] for i, t in enumerate(e.frame_captions)],
            *[[f"VIIT caption #{i + 1}", t] for i, t in enumerate(e.viit_captions)],
            ["ground truth (world script; no model sees it)", e.ground_truth]]
    pair = f" (same-middle-frame pair {e.pair_id})" if e.pair_id is not None else ""
    body += [f"<h3>{html.escape(e.clip_id + pair)}</h3>", img(e.strip, e.clip_id),
             _html_table(["text source", "text"], rows)]
  body += ["<h2>Phase timings</h2>", _html_table(["phase", "wall", "CPU", "what"], timing)]
  style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;"
           "padding:3px 8px;text-align:left;font-size:14px}img{max-width:100%;display:block;"
           "margin:.5em 0}")
  (w / "report.html").write_text(
      f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
      f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
  for c in cl:
    print(f"claim {c['id']}: {c['verdict']}: {c['statement']} | {c['evidence']}", flush=True)
  print(f"report: {w / 'report.md'}, {w / 'report.html'}, {out}/ ({len(exs)} example clips)",
        flush=True)
  return record


def seeds_table(workdirs: Sequence[str | pathlib.Path]) -> str:
  """Markdown: the claims' numbers of several pipeline runs (e.g. seeds), one row per run."""
  header = ["run", "seed", "CIDEr img / ph1 / ph2", "WUPS img / ph1 / ph2", "claim 1",
            "R@1 alt / frames / VIIT", "claim 2", "wall (all phases)", "CPU (all phases)"]
  rows = []
  for wd in workdirs:
    w = pathlib.Path(wd)
    rec = json.loads((w / CLAIMS_FILE).read_text())
    v, d = rec["numbers"]["vlm"], rec["numbers"]["dual_encoder"]
    t = json.loads((w / pl.TIMINGS_FILE).read_text()) if (w / pl.TIMINGS_FILE).is_file() else {}
    rows.append([
        str(w), str(rec["seed"]), " / ".join(fmt(v[p]["cider"]) for p in pl.VLM_EVALS),
        " / ".join(fmt(v[p]["wups"]) for p in pl.VLM_EVALS), rec["claims"][0]["verdict"],
        " / ".join(fmt(d[s]["r1"]) for s in pl.DUAL_ENCODERS), rec["claims"][1]["verdict"],
        pl._fmt_s(t.get("all_phases_wall_s", 0)), pl._fmt_s(t.get("all_phases_cpu_s", 0))])  # pylint: disable=protected-access
  return "\n".join(_md_table(header, rows)) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(prog="python -m viit_jax.report", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", help="the pipeline's workdir: writes its report")
  parser.add_argument("--runs", nargs="+", default=(),
                      help="finished pipeline workdirs (e.g. one per seed): prints a table of "
                           "their claims' numbers instead")
  args = parser.parse_args(argv)
  if bool(args.workdir) == bool(args.runs):
    parser.error("give exactly one of --workdir or --runs")
  if args.runs:
    print(seeds_table(args.runs), end="")
  else:
    write(args.workdir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
