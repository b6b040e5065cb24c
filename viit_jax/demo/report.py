"""The demo pipeline's report: the paper's Tables 3 and 4 in miniature, the claims, plots, examples.

  python -m viit_jax.demo.report --workdir=runs/demo

Reads only what the phases wrote into the pipeline workdir (layout: viit_jax/demo/phases.py):
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
import dataclasses
import html
import json
import math
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from viit_jax import paths
from viit_jax.demo import analysis
from viit_jax.demo import phases as ph

fmt = analysis.fmt  # The one number format of every table.
SOURCE_NAMES = analysis.SOURCE_NAMES
FILES_DIR = "report_files"
CLAIMS_FILE = "claims.json"
NUM_EXAMPLES = 4

# Where each reported number sits in an evaluation's metrics.json (viit_jax/evaluate.py; x100).
MetricPath = tuple[str, ...]
VLM_METRICS: dict[str, MetricPath] = {
    "cider": ("tasks", "msrvtt_caption", "metrics", "CIDEr"),
    "qa": ("tasks", "msrvtt_qa", "metrics", "accuracy"),
    "anet_cider": ("tasks", "anet_caption", "metrics", "CIDEr"),
    "anet_qa": ("tasks", "anet_qa", "metrics", "accuracy"),
    "wups": ("tasks", "nextqa_oe", "metrics", "WUPS@0")}
# Shown as n/a when an evaluation lacks them (a demo world made before its ActivityNet layout).
OPTIONAL_VLM_METRICS = ("anet_cider", "anet_qa")
VLM_COLUMNS = {"cider": "MSR-VTT-style CIDEr", "qa": "MSR-VTT-QA accuracy*",
               "anet_cider": "ANet-style CIDEr", "anet_qa": "ActivityNet-QA accuracy*",
               "wups": "NExT-OE WUPS@0"}
# Text-to-video recall on the 1k-A-style pairs (one sentence per test clip) and on the full
# protocol (every sentence of the same clips a query: 6-10 per clip, about 8x the queries).
DE_METRICS: dict[str, MetricPath] = {
    "r1": ("tasks", "msrvtt_retrieval", "metrics", "t2v/R@1"),
    "r5": ("tasks", "msrvtt_retrieval", "metrics", "t2v/R@5"),
    "r10": ("tasks", "msrvtt_retrieval", "metrics", "t2v/R@10"),
    "full_r1": ("tasks", "msrvtt_full_retrieval", "metrics", "t2v/R@1"),
    "full_r5": ("tasks", "msrvtt_full_retrieval", "metrics", "t2v/R@5"),
    "full_r10": ("tasks", "msrvtt_full_retrieval", "metrics", "t2v/R@10")}
# Shown as n/a when an evaluation lacks them (eval.tasks without msrvtt_full_retrieval).
OPTIONAL_DE_METRICS = ("full_r1", "full_r5", "full_r10")
# Shown when the evaluation has it (eval.tasks may leave it out).
KINETICS_TOP1: MetricPath = ("tasks", "kinetics_zero_shot", "metrics", "top1")

# The paper's numbers (docs/paper.md): Table 3 (PaLI-3 based VLM) and Table 4 (MSR-VTT t2v R@1).
PAPER_TABLE3 = {"eval_image": {"cider": 21.3, "qa": 12.7, "anet_cider": 13.8, "anet_qa": 22.9,
                               "wups": 23.2},
                "eval_phase1": None,  # The paper reports no phase-1-only row in Table 3.
                "eval_phase2": {"cider": 48.2, "qa": 24.4, "anet_cider": 31.0, "anet_qa": 29.6,
                                "wups": 29.5}}
PAPER_TABLE4 = {"alt_text": ("alt-text", 37.0),
                "frame_captions": ("image captioner on frames", 39.5),
                "viit": ("VIIT captions (full method)", 44.3)}
TABLE4_NOTE = ("R@K: the 1k-A-style pairs, one sentence per test clip (the claim's); full R@K: "
               "every sentence of the same clips a query (the full protocol, about 8x the "
               "queries). Each dual encoder is one draw of its trainer: `python -m "
               "viit_jax.demo.claim_noise --run=<this workdir>` retrains the VIIT and frame-caption "
               "ones with other seeds and prints the margin's spread (docs/demo_results.md, "
               "'How sure is claim 2').")
QA_NOTE = ("MSR-VTT-QA and ActivityNet-QA accuracy: exact match on the demo world's layouts of "
           "them (msrvtt/MSRVTT-QA/test_qa.json, activitynet/test_{q,a}.json: two NExT-QA-style "
           "questions per clip, phrase answers, so harder than the real sets' one-word answers). "
           "ANet-style CIDEr: one caption per segment of activitynet/val_1.json against its one "
           "sentence.")


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
  # The dual encoder on the filtered VIIT captions, as `de` (None: a run without filtering).
  filtered: dict[str, float] | None = None


FILTERED = "viit_filtered"


def _numbers(metrics: Mapping[str, Any], paths: Mapping[str, MetricPath],
             optional: Sequence[str]) -> dict[str, float]:
  """Each of `paths` from a metrics.json tree; NaN for an `optional` one it lacks."""
  return {k: lookup(metrics, p) if k not in optional or has(metrics, p) else math.nan
          for k, p in paths.items()}


def read_numbers(workdir: pathlib.Path) -> Numbers:
  vlm, de, files = {}, {}, {}
  for phase in ph.VLM_EVALS:
    m = load_metrics(workdir, phase)
    vlm[phase] = _numbers(m, VLM_METRICS, OPTIONAL_VLM_METRICS)
    files[phase] = str(workdir / phase / "metrics.json")
  sources = {**{s: f"eval_{p}" for s, p in ph.DUAL_ENCODERS.items()},
             FILTERED: ph.EVAL_DE_FILTERED}
  for source, phase in sources.items():
    if source == FILTERED and not (workdir / phase / "metrics.json").is_file():
      continue  # A run without the filtering phases.
    m = load_metrics(workdir, phase)
    de[source] = _numbers(m, DE_METRICS, OPTIONAL_DE_METRICS)
    if has(m, KINETICS_TOP1):
      de[source]["kinetics_top1"] = lookup(m, KINETICS_TOP1)
    files[phase] = str(workdir / phase / "metrics.json")
  return Numbers(vlm=vlm, de=de, files=files, filtered=de.pop(FILTERED, None))


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
  """The trainer's metrics.jsonl records; a resumed run's repeated steps keep the last record, and
  a torn last line (a kill mid-write) is dropped."""
  if not path.is_file():
    return []
  by_step: dict[tuple[int, bool], dict[str, Any]] = {}
  for rec in paths.read_jsonl(path):
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
  for source, phase in ph.DUAL_ENCODERS.items():
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
  sources = list(ph.DUAL_ENCODERS)
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


@dataclasses.dataclass(frozen=True)
class Example:
  clip_id: str
  strip: pathlib.Path
  alt_text: str
  frame_captions: list[str]
  viit_captions: list[str]
  ground_truth: str
  pair_id: int | None


def examples(pool: analysis.Pool, out: pathlib.Path, count: int = NUM_EXAMPLES) -> list[Example]:
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
  for phase, (_, name) in ph.VLM_EVALS.items():
    paper = PAPER_TABLE3[phase]
    cells = [name]
    for k in VLM_METRICS:
      cells += [fmt(n.vlm[phase][k]), fmt(paper[k]) if paper else "-"]
    rows.append(cells)
  return rows


PAPER_COLUMNS = {"cider": "paper MSR-VTT CIDEr", "qa": "paper MSR-VTT-QA",
                 "anet_cider": "paper ANet CIDEr", "anet_qa": "paper ANet-QA",
                 "wups": "paper NExT-OE WUPS"}
TABLE3_HEADER = ["model"] + [h for k in VLM_METRICS for h in (VLM_COLUMNS[k], PAPER_COLUMNS[k])]
TABLE4_HEADER = ["dual encoder trained on", "R@1", "R@5", "R@10", "full R@1", "full R@5",
                 "full R@10", "paper R@1 (text source)", "Kinetics-style zero-shot top-1"]


def _kept(cfg: Mapping[str, Any]) -> str:
  """Which VIIT captions the filter keeps, from the pipeline config."""
  f, k = cfg.get("filter", {}), cfg.get("autolabel", {}).get("num_samples", "K")
  kept = f"top {f['top_k']} of {k}" if f.get("top_k") else f"all of {k}"
  if f.get("min_score", -1.0) > -1.0:
    kept += f" with cosine >= {f['min_score']}"
  return f"{kept} per clip"


def filtered_name(cfg: Mapping[str, Any]) -> str:
  return f"VIIT captions filtered by de_viit ({_kept(cfg)}; beyond the paper)"


def table4_rows(n: Numbers, cfg: Mapping[str, Any]) -> list[list[str]]:
  rows = []
  for source in ph.DUAL_ENCODERS:
    paper_name, paper_r1 = PAPER_TABLE4[source]
    d = n.de[source]
    rows.append([SOURCE_NAMES[source], *(fmt(d[k]) for k in DE_METRICS),
                 f"{paper_r1:.1f} ({paper_name})", fmt(d.get("kinetics_top1"))])
  if n.filtered is not None:
    d = n.filtered
    rows.append([filtered_name(cfg), *(fmt(d[k]) for k in DE_METRICS), "n/a",
                 fmt(d.get("kinetics_top1"))])
  return rows


def filtering_summary(n: Numbers, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
  """Filtered vs unfiltered VIIT captions: R@1/5/10 of both dual encoders and the R@1 gain."""
  if n.filtered is None:
    return None
  gain = n.filtered["r1"] - n.de["viit"]["r1"]
  verdict = ("helps" if gain >= MIN_MARGIN else "hurts" if gain <= -MIN_MARGIN
             else "makes no clear difference")
  f, a = n.filtered, n.de["viit"]
  text = (f"Caption filtering {verdict} here: t2v R@1 {fmt(f['r1'])} for the dual encoder on the "
          f"VIIT captions de_viit scores highest ({_kept(cfg)}) vs {fmt(a['r1'])} on all of them "
          f"({gain:+.1f} points; a clear difference is at least {MIN_MARGIN:.1f}); R@5 "
          f"{fmt(f['r5'])} vs {fmt(a['r5'])}, R@10 {fmt(f['r10'])} vs {fmt(a['r10'])}.")
  return {"filtered": n.filtered, "unfiltered": n.de["viit"], "r1_gain": gain,
          "verdict": verdict, "filter": cfg.get("filter", {}), "summary": text}


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
    marker = ph.read_marker(workdir, phase)
    if marker is not None:
      rows.append([phase, ph.fmt_s(marker["wall_s"]), ph.fmt_s(marker["cpu_s"]),
                   marker["what"]])
  return rows


def _phase_names() -> list[str]:
  return ([ph.WORLD, "phase0", "phase1", ph.VIIT_DATA, "phase2", ph.LABEL_VIIT, ph.LABEL_FRAMES]
          + list(ph.DUAL_ENCODERS.values()) + [ph.FILTER_VIIT, ph.DE_FILTERED]
          + list(ph.VLM_EVALS) + list(ph.DE_EVALS) + [ph.EVAL_DE_FILTERED])


def _config(workdir: pathlib.Path) -> dict[str, Any]:
  path = workdir / ph.CONFIG_FILE
  return json.loads(path.read_text()) if path.is_file() else {}


def write(workdir: str | pathlib.Path) -> dict[str, Any]:
  """Writes report.md, report.html, report_files/ and claims.json; returns the claims record."""
  w = pathlib.Path(workdir).resolve()
  out = w / FILES_DIR
  out.mkdir(parents=True, exist_ok=True)
  n = read_numbers(w)
  cl = claims(n)
  cfg = _config(w)
  pool = analysis.read_pool(w, cfg)
  acc = analysis.pool_caption_accuracy(pool)
  carried = analysis.pool_change_carried(pool)
  test_pairs = analysis.retrieval_test_pairs(pool.world)
  oracle = analysis.oracle_recall(pool.truth, [f for f, _ in test_pairs])
  query_oracle = analysis.query_oracle_recall(pool.truth, test_pairs)
  record = {"seed": cfg.get("seed"), "preset": cfg.get("preset"), "claims": cl,
            "numbers": {"vlm": n.vlm, "dual_encoder": n.de}, "caption_accuracy": acc,
            "change_carried": carried, "fact_oracle_recall": oracle,
            "query_oracle_recall": query_oracle,
            "caption_filtering": filtering_summary(n, cfg), "metrics_files": n.files}
  paths.write_text(w / CLAIMS_FILE, json.dumps(record, indent=1))
  losses, recall = plot_losses(w, out), plot_recall(n, out)
  exs = examples(pool, out)
  timing = _timing_rows(w)
  cards = sorted(p.relative_to(w) for pattern in ("*/CARD.md", "*/*/CARD.md")
                 for p in w.glob(pattern))  # The auto-labeled and synthesized versions' cards.

  title = f"viit_jax demo: the method end to end (seed {cfg.get('seed')}, preset {cfg.get('preset')})"
  t3, t4 = table3_rows(n), table4_rows(n, cfg)
  filtering = filtering_summary(n, cfg)
  filtering_text = [filtering["summary"], ""] if filtering else []
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
         *_md_table(TABLE4_HEADER, t4), "", TABLE4_NOTE, "", *filtering_text,
         f"![recall]({rel(recall)})", "",
         "### What each kind of fact is worth on this test set", "",
         *_md_table(analysis.ORACLE_HEADER, analysis.oracle_rows(oracle)), "", analysis.ORACLE_NOTE, "",
         "### What the queries' words are worth", "",
         *_md_table(analysis.QUERY_ORACLE_HEADER, analysis.query_oracle_rows(query_oracle)), "",
         analysis.QUERY_ORACLE_NOTE, "",
         "## What the training texts get right (pool clips vs the world's script)", "",
         *_md_table(analysis.ACCURACY_HEADER, analysis.accuracy_rows(acc)), "", analysis.ACCURACY_NOTE, "",
         "### Whether they carry what happens", "",
         *_md_table(analysis.CHANGE_HEADER, analysis.change_rows(carried)), "",
         analysis.CHANGE_NOTE, "",
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
  md += ["## Data cards", "", *[f"- [{c.parent}]({c})" for c in cards], "",
         "## Phase timings", "", *_md_table(["phase", "wall", "CPU", "what"], timing), "",
         "## Sources", "", *[f"- {k}: `{v}`" for k, v in n.files.items()], ""]
  paths.write_text(w / "report.md", "\n".join(md))

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
           _html_table(TABLE4_HEADER, t4), f"<p><small>{html.escape(TABLE4_NOTE)}</small></p>",
           *[f"<p>{html.escape(t)}</p>" for t in filtering_text if t], img(recall, "recall chart"),
           "<h3>What each kind of fact is worth on this test set</h3>",
           _html_table(analysis.ORACLE_HEADER, analysis.oracle_rows(oracle)),
           f"<p><small>{html.escape(analysis.ORACLE_NOTE)}</small></p>",
           "<h3>What the queries' words are worth</h3>",
           _html_table(analysis.QUERY_ORACLE_HEADER, analysis.query_oracle_rows(query_oracle)),
           f"<p><small>{html.escape(analysis.QUERY_ORACLE_NOTE)}</small></p>",
           "<h2>What the training texts get right (pool clips vs the world's script)</h2>",
           _html_table(analysis.ACCURACY_HEADER, analysis.accuracy_rows(acc)),
           f"<p><small>{html.escape(analysis.ACCURACY_NOTE)}</small></p>",
           "<h3>Whether they carry what happens</h3>",
           _html_table(analysis.CHANGE_HEADER, analysis.change_rows(carried)),
           f"<p><small>{html.escape(analysis.CHANGE_NOTE)}</small></p>", "<h2>Loss curves</h2>",
           img(losses, "loss curves"), "<h2>Example pool clips and their training texts</h2>"]
  for e in exs:
    rows = [["alt-text", e.alt_text],
            *[[f"frame captions #{i + 1}", t] for i, t in enumerate(e.frame_captions)],
            *[[f"VIIT caption #{i + 1}", t] for i, t in enumerate(e.viit_captions)],
            ["ground truth (world script; no model sees it)", e.ground_truth]]
    pair = f" (same-middle-frame pair {e.pair_id})" if e.pair_id is not None else ""
    body += [f"<h3>{html.escape(e.clip_id + pair)}</h3>", img(e.strip, e.clip_id),
             _html_table(["text source", "text"], rows)]
  body += ["<h2>Data cards</h2><ul>",
           *[f'<li><a href="{html.escape(str(c))}">{html.escape(str(c.parent))}</a></li>'
             for c in cards], "</ul>",
           "<h2>Phase timings</h2>", _html_table(["phase", "wall", "CPU", "what"], timing)]
  style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;"
           "padding:3px 8px;text-align:left;font-size:14px}img{max-width:100%;display:block;"
           "margin:.5em 0}")
  paths.write_text(
      w / "report.html",
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
            "R@1 alt / frames / VIIT", "claim 2", "wall (last run)", "CPU (all phases)"]
  rows = []
  for wd in workdirs:
    w = pathlib.Path(wd)
    rec = json.loads((w / CLAIMS_FILE).read_text())
    v, d = rec["numbers"]["vlm"], rec["numbers"]["dual_encoder"]
    t = json.loads((w / ph.TIMINGS_FILE).read_text()) if (w / ph.TIMINGS_FILE).is_file() else {}
    rows.append([
        str(w), str(rec["seed"]), " / ".join(fmt(v[p]["cider"]) for p in ph.VLM_EVALS),
        " / ".join(fmt(v[p]["wups"]) for p in ph.VLM_EVALS), rec["claims"][0]["verdict"],
        " / ".join(fmt(d[s]["r1"]) for s in ph.DUAL_ENCODERS), rec["claims"][1]["verdict"],
        ph.fmt_s(t.get("this_run_wall_s", 0)), ph.fmt_s(t.get("all_phases_cpu_s", 0))])
  return "\n".join(_md_table(header, rows)) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(prog="python -m viit_jax.demo.report", description=__doc__,
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
