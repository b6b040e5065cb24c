"""Keep the captions of an auto-labeling version that a dual encoder agrees with.

  python -m viit_jax.filter_captions --config=configs/filter_captions.py:<key=value,...> \
      --workdir=DIR

Reads top to bottom: config -> the dual encoder (viit_jax.search: its latest checkpoint, frames
and tokenizer as trained) -> the source version -> its search index (every caption's cosine to its
clip; built once and shared with viit_jax.serve) -> per clip, the captions with score >= min_score,
then its top_k of them (best first) -> a new auto-labeling version in viit_jax.autolabel's layout
(`<workdir>/<version>/`: units/unit-NNNNN.{tfrecord,jsonl,rejects.jsonl,meta.json} per source
unit, written atomically, finished units skipped on a rerun), its manifest (the source's settings,
`filter` = {dual_encoder, source, index, min_score, top_k, counts}) and its CARD.md.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from data import rejects as rj
from viit_jax import caption_sets
from viit_jax import paths
from viit_jax import records as records_lib
from viit_jax import runtime
from viit_jax import search

NO_CAPTION_KEPT = "no_caption_kept"


def keep(captions: Sequence[str], scores: Sequence[float], min_score: float, top_k: int
         ) -> list[int]:
  """Indices of the kept captions, best score first (ties: caption order)."""
  order = sorted(range(len(captions)), key=lambda i: (-scores[i], i))
  kept = [i for i in order if scores[i] >= min_score]
  return kept[:top_k] if top_k > 0 else kept


def filter_rows(rows: Sequence[Mapping[str, Any]], index: search.Index, min_score: float,
                top_k: int, source: str) -> tuple[list[dict[str, Any]], list[rj.RejectRecord]]:
  """The unit's rows with their kept captions (and their per-caption fields), and the clips
  dropped: not in the index (they did not decode) or left without a caption."""
  out, rejects = [], []
  for r in rows:
    scores = index.caption_scores.get(r["clip_id"])
    if scores is None:
      reason = index.rejected.get(r["clip_id"], rj.CORRUPT)
      rejects.append(rj.RejectRecord("video", r["path"], reason,
                                     f"clip {r['clip_id']}: not in the index ({source})"))
      continue
    kept = keep(r["captions"], scores, min_score, top_k)
    if not kept:
      rejects.append(rj.RejectRecord("caption", r["path"], NO_CAPTION_KEPT,
                                     f"clip {r['clip_id']}: best score {max(scores):.4f}"))
      continue
    row = {**r, "captions": [r["captions"][i] for i in kept],
           "mean_logprobs": [r["mean_logprobs"][i] for i in kept],
           "num_tokens": [r["num_tokens"][i] for i in kept],
           "dual_encoder_scores": [scores[i] for i in kept]}
    if "frame_captions" in r:
      row["frame_captions"] = [r["frame_captions"][i] for i in kept]
    out.append(row)
  return out, rejects


# Manifest keys finalize() writes; the rest of the source's manifest are its settings.
_COUNTED = ("num_units", "num_clips_listed", "num_captioned", "num_rejected",
            "num_input_rows_rejected", "rejects_per_reason", "stats", "files", "units", "runs",
            "finished")


def run(config: ml_collections.ConfigDict, workdir: str, *, log=print) -> dict[str, Any]:
  """Filters (or finishes filtering) config.corpus into <workdir>/<version>; returns its
  manifest."""
  if not config.dual_encoder or not config.corpus:
    raise ValueError("dual_encoder (a dual-encoder trainer workdir) and corpus (an "
                     "auto-labeling version) are required")
  if config.top_k <= 0 and config.min_score <= -1.0:
    raise ValueError("nothing to filter: set top_k > 0 or min_score > -1 (cosine)")
  started = time.time()
  de = search.load_dual_encoder(config.dual_encoder, step=config.dual_encoder_step)
  corpus = search.open_corpus(config.corpus, config.corpus_version, config.video_root)
  index_dir = paths.path(config.index or search.default_index_dir(de, corpus))
  search.build_index(de, corpus, index_dir, decode_workers=config.decode_workers, log=log)
  index = search.Index(index_dir)
  index.check(de, corpus)
  out_dir = paths.path(workdir) / config.version
  settings = {**{k: v for k, v in corpus.manifest.items() if k not in _COUNTED},
              "version": config.version,
              "filter": {"dual_encoder": {"path": de.source.path, "step": de.source.step},
                         "source": str(corpus.dir), "source_sha256": corpus.fingerprint,
                         "index": str(index_dir), "min_score": float(config.min_score),
                         "top_k": int(config.top_k)}}
  records_lib.bind_settings(out_dir, settings)
  units = caption_sets.Units(out_dir)
  num_units = len(corpus.manifest["units"])
  for u in range(num_units):
    if units.meta(u) is not None:
      continue
    rows, rejects = filter_rows(corpus.unit_rows(u), index, float(config.min_score),
                                int(config.top_k), str(index_dir))
    units.write(u, rows, rejects, {"unit": u, "clips": len(rows),
                                   "source_unit": corpus.manifest["units"][u]})
  manifest = caption_sets.finalize(units, num_units, settings, rj.Rejects("filter"))
  assert manifest is not None  # Every unit was written above.
  kept, listed = (m["stats"]["all_captions"]["num_captions"] for m in (manifest, corpus.manifest))
  log(f"[filter] {manifest['num_captioned']} clips kept with {kept} of {listed} captions; "
      f"{manifest['num_rejected']} clips dropped {manifest['rejects_per_reason']}; -> {out_dir} "
      f"({time.time() - started:.1f}s)")
  return manifest


def main(args: runtime.Args) -> int:
  run(args.config, args.workdir, log=runtime.process0_log)
  return 0


if __name__ == "__main__":
  runtime.run(main)
