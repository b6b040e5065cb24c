"""What the demo's training texts could give at most: the pool's ground-truth captions.

  python -m viit_jax.demo.caption_ceiling --run=runs/demo [--out=DIR] \
      [--captions_per_clip=4] [--seed=0] [--text_only]

For a finished `make demo` run (`--run`, the pipeline's workdir), two measurements beside the run's
three dual encoders (alt-text, frame captions, VIIT captions):

1. Text to text (no model; seconds): how well each training text names its own pool clip in the
   words the test queries use. Query i is a fresh MSR-VTT-style paraphrase of pool clip i's script
   (the world's own writer, `data.demo_world.paraphrases`); document j is every training text of
   pool clip j joined; TF-IDF over words and word pairs, cosine; R@K over the whole pool (ties
   broken at random, in expectation: documents that say the same score chance). A text that
   names the wrong colours, shapes or events of its clip ranks other clips first. The ceiling
   row (ground truth) is K other paraphrases of the same script.
2. The ceiling of the dual-encoder recipe (about 1.5 minutes on 2 cores): the pool's ground-truth
   captions (K paraphrases per clip) written in the auto-labeling layout, a dual encoder trained
   on them with exactly the run's `de_viit` command (only the caption set and the workdir change:
   same start, steps, batch, seed and clips) and evaluated with the run's `eval_de_viit` command on
   the 1k-A-style test set. Its R@1 estimates the most that better machine captions can buy with
   this recipe (one draw of the captions: another draw moves it by up to 2 points on the demo).

Outputs under `--out` (default <run>/caption_ceiling): truth_k<K>_s<seed>/v1 (the caption set),
de_truth and eval_de_truth (the phases, with logs/ and DONE.json markers: a rerun with the same
settings skips what is done; other settings train again), results.json and the printed table.
docs/demo_results.md quotes these measurements; they are not tests.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import pathlib
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from data import demo_world
from viit_jax import caption_sets
from viit_jax.demo import phases

TRUTH = "truth"
DE_TRUTH, EVAL_TRUTH = "de_truth", "eval_de_truth"
RESULTS = "results.json"
KS = (1, 5, 10)
SOURCES = {"alt_text": "alt-text", "frame_captions": "frame captions", "viit": "VIIT captions",
           "truth": "ground truth (the world's paraphrases)"}
_WORD = re.compile(r"[a-z]+")


# ------------------------------------------------------------------------------------------------
# The pool's texts.


def pool_records(world: pathlib.Path) -> dict[str, dict[str, Any]]:
  """The world's ground-truth record of each pool clip, by the pool CSV's video id."""
  out = {rec["clip_id"].split("-", 1)[1]: rec for rec in demo_world.read_records(world)
         if rec["dataset"] == "webvid"}
  if not out:
    raise ValueError(f"{world}/world/clips.jsonl has no pool (webvid) clips")
  return out


def paraphrase_sets(records: Mapping[str, Mapping[str, Any]], ids: Sequence[str], count: int,
                    seed: int, stream: int) -> dict[str, list[str]]:
  """`count` paraphrases of each clip's script; (seed, stream, clip position) seeds each clip."""
  return {cid: demo_world.paraphrases(demo_world.clip_from_record(records[cid]),
                                      np.random.default_rng([seed, stream, i]), count)
          for i, cid in enumerate(ids)}


def write_caption_set(label_dir: pathlib.Path, captions: Mapping[str, Sequence[str]],
                      out_dir: pathlib.Path) -> pathlib.Path:
  """A finished auto-labeling version (viit_jax.caption_sets layout) with the given captions.

  Rows (clip order, paths, alt-text) and the manifest come from `label_dir`, an auto-labeling
  output of the same pool; only the captions change. Returns out_dir.
  """
  manifest = caption_sets.read_manifest(label_dir)
  rows = list(caption_sets.caption_rows(label_dir))
  missing = [r["clip_id"] for r in rows if r["clip_id"] not in captions]
  if missing:
    raise ValueError(f"no captions for {len(missing)} clips of {label_dir}, e.g. {missing[:3]}")
  if out_dir.exists():
    shutil.rmtree(out_dir)
  (out_dir / "units").mkdir(parents=True)
  unit = "unit-00000.jsonl"
  with open(out_dir / "units" / unit, "w", encoding="utf-8") as f:
    for r in rows:
      f.write(json.dumps({**r, "captions": list(captions[r["clip_id"]])}) + "\n")
  manifest = {**manifest, "units": [unit], "captions": "ground truth: the world's paraphrases"}
  (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
  return out_dir


# ------------------------------------------------------------------------------------------------
# Text-to-text retrieval.


def _terms(text: str) -> list[str]:
  words = _WORD.findall(text.lower())
  return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def text_retrieval(queries: Sequence[str], docs: Sequence[str],
                   ks: Sequence[int] = KS) -> dict[str, float]:
  """Query i's true document is docs[i]: R@K x100 and MedR (1-based) under the TF-IDF cosine
  (words and word pairs; idf = log((1 + n) / (1 + df)) + 1, fitted on the docs).

  Shapes: len(queries) == len(docs) == n.
  """
  if len(queries) != len(docs) or not docs:
    raise ValueError(f"need as many queries as documents (> 0), got {len(queries)} and {len(docs)}")
  doc_terms = [collections.Counter(_terms(d)) for d in docs]
  df = collections.Counter(t for c in doc_terms for t in c)
  vocab = {t: i for i, t in enumerate(sorted(df))}
  idf = np.array([math.log((1 + len(docs)) / (1 + df[t])) + 1 for t in vocab], np.float64)

  def matrix(counts: Sequence[Mapping[str, int]]) -> np.ndarray:  # [n, V], rows L2-normalised
    m = np.zeros((len(counts), len(vocab)), np.float64)
    for i, c in enumerate(counts):
      for t, k in c.items():
        if t in vocab:
          m[i, vocab[t]] = k
    m *= idf
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

  sims = matrix([collections.Counter(_terms(q)) for q in queries]) @ matrix(doc_terms).T
  true = np.diag(sims)[:, None]
  above = (sims > true + 1e-9).sum(axis=1)
  tied = (np.abs(sims - true) <= 1e-9).sum(axis=1)  # the true doc and the docs tied with it
  # Ties broken at random, in expectation: the true doc is at 0-based position above + j, j uniform
  # in [0, tied); so identical documents (a captioner that says the same for every clip) score
  # chance, not 100%.
  out = {f"R@{k}": float(100.0 * np.mean(np.clip((k - above) / tied, 0.0, 1.0))) for k in ks}
  out["MedR"] = float(np.median(above + (tied + 1) / 2))
  return out


# ------------------------------------------------------------------------------------------------
# The ceiling dual encoder: the run's own de_viit / eval_de_viit commands on the truth captions.


def ceiling_phases(run: pathlib.Path, out: pathlib.Path, captions_dir: pathlib.Path
                   ) -> list[phases.Phase]:
  """The run's de_viit and eval_de_viit commands, retargeted at the truth captions and `out`."""
  de = phases.DUAL_ENCODERS["viit"]
  ev = f"eval_{de}"
  argvs = {name: phases.finished_argv(run, name) for name in (de, ev)}
  swap = phases.replace_once
  train = swap(argvs[de], f"dual_encoder.viit_captions_dir={run / phases.LABEL_VIIT / 'v1'}",
               f"dual_encoder.viit_captions_dir={captions_dir}", de)
  train = swap(train, f"--workdir={run / de}", f"--workdir={out / DE_TRUTH}", de)
  evaluate = swap(argvs[ev], f"checkpoint={run / de}", f"checkpoint={out / DE_TRUTH}", ev)
  evaluate = swap(evaluate, f"--workdir={run / ev}", f"--workdir={out / EVAL_TRUTH}", ev)
  return [phases.Phase(DE_TRUTH, "dual encoder on the ground-truth captions", train),
          phases.Phase(EVAL_TRUTH, "evaluate it (1k-A-style retrieval)", evaluate)]


def t2v_metrics(metrics_path: pathlib.Path) -> dict[str, float]:
  """Text-to-video R@K and MedR on the 1k-A-style set from an evaluation's metrics.json."""
  tasks = json.loads(metrics_path.read_text())["tasks"]
  m = tasks["msrvtt_retrieval"]["metrics"]
  return {f"R@{k}": float(m[f"t2v/R@{k}"]) for k in KS} | {"MedR": float(m["t2v/MedR"])}


# ------------------------------------------------------------------------------------------------


def measure(run: pathlib.Path, out: pathlib.Path, *, captions_per_clip: int = 4, seed: int = 0,
            text_only: bool = False,
            log: Callable[[str], None] = print) -> dict[str, Any]:
  """Both measurements for one finished run; writes and returns results.json's content."""
  run, out = run.resolve(), out.resolve()
  cfg = phases.run_config(run)
  records = pool_records(phases.world_dir(cfg, run))
  labels = {"viit": run / phases.LABEL_VIIT / "v1", "frame_captions":
            run / phases.LABEL_FRAMES / "v1"}
  rows = {name: {r["clip_id"]: r for r in caption_sets.caption_rows(d)}
          for name, d in labels.items()}
  ids = list(rows["viit"])
  truth = paraphrase_sets(records, ids, captions_per_clip, seed, stream=0)
  queries = paraphrase_sets(records, ids, 1, seed, stream=1)
  texts = {"alt_text": {c: [rows["viit"][c]["alt_text"]] for c in ids},
           "frame_captions": {c: rows["frame_captions"][c]["captions"] for c in ids},
           "viit": {c: rows["viit"][c]["captions"] for c in ids}, "truth": truth}
  query_list = [queries[c][0] for c in ids]
  t2t = {name: text_retrieval(query_list, [" . ".join(texts[name][c]) for c in ids])
         for name in SOURCES}
  results: dict[str, Any] = {"run": str(run), "pool_clips": len(ids),
                             "captions_per_clip": captions_per_clip, "seed": seed,
                             "text_to_text": t2t, "dual_encoder_t2v": {}}
  for name, de in phases.DUAL_ENCODERS.items():
    path = run / f"eval_{de}" / "metrics.json"
    if path.is_file():
      results["dual_encoder_t2v"][name] = t2v_metrics(path)
  if not text_only:
    # The settings name the caption set, so other settings give other commands (and a rerun).
    set_name = f"{TRUTH}_k{captions_per_clip}_s{seed}"
    captions_dir = write_caption_set(labels["viit"], truth, out / set_name / "v1")
    phases.run_chain(ceiling_phases(run, out, captions_dir), out,
                     phases.child_env(cfg, os.environ), log, "ceiling")
    results["dual_encoder_t2v"]["truth"] = t2v_metrics(out / EVAL_TRUTH / "metrics.json")
  out.mkdir(parents=True, exist_ok=True)
  (out / RESULTS).write_text(json.dumps(results, indent=1))
  return results


def table(results: Mapping[str, Any]) -> str:
  """The results as a Markdown table: one row per training text."""
  lines = ["| training text | text-to-text R@1 | R@5 | dual encoder t2v R@1 | R@5 | R@10 |",
           "|---|---|---|---|---|---|"]
  for name, label in SOURCES.items():
    t = results["text_to_text"][name]
    d = results["dual_encoder_t2v"].get(name)
    de = [f"{d[f'R@{k}']:.2f}" for k in KS] if d else ["-"] * len(KS)
    lines.append(f"| {label} | {t['R@1']:.2f} | {t['R@5']:.2f} | " + " | ".join(de) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--run", required=True, help="a finished pipeline workdir (e.g. runs/demo)")
  p.add_argument("--out", default="", help="default: <run>/caption_ceiling")
  p.add_argument("--captions_per_clip", type=int, default=4)
  p.add_argument("--seed", type=int, default=0, help="paraphrase draws (not the run's seed)")
  p.add_argument("--text_only", action="store_true", help="skip the ceiling dual encoder")
  a = p.parse_args(argv)
  run = pathlib.Path(a.run)
  out = pathlib.Path(a.out) if a.out else run / "caption_ceiling"
  try:
    results = measure(run, out, captions_per_clip=a.captions_per_clip, seed=a.seed,
                      text_only=a.text_only)
  except FileNotFoundError as e:  # Not a finished pipeline run.
    p.error(str(e))
  print(f"pool clips: {results['pool_clips']}; text-to-text: TF-IDF, queries are fresh "
        "paraphrases of each pool clip; dual encoder: 1k-A-style test set")
  print(table(results))
  print(f"results: {out / RESULTS}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
