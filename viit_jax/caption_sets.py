"""An auto-labeling version on disk: work units, caption rows, manifest.

Written by `python -m viit_jax.autolabel` (layout in its docstring) and `python -m
viit_jax.filter_captions`, read by `data.caption_tasks` (the dual encoder's training data), the
search index, the demo report and the demo's caption-ceiling probe. Never imports TensorFlow: the
TFRecords are written by `viit_jax.records`.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from data import rejects as rj
from viit_jax import cards
from viit_jax import paths
from viit_jax import records as records_lib
from viit_jax.metrics import caption_stats

ROW_FIELDS = ("index", "clip_id", "path", "segment", "alt_text", "captions", "mean_logprobs",
              "num_tokens")

TFRECORD_KINDS = {"index": "int64", "clip_id": "bytes", "path": "bytes", "segment": "float",
                  "alt_text": "bytes", "captions": "bytes", "mean_logprobs": "float",
                  "num_tokens": "int64", "frame_captions": "bytes"}


def row_example(row: Mapping[str, Any]) -> bytes:
  """A JSONL row as a tf.train.Example (frame_captions flattened sample-major)."""
  feats: dict[str, Any] = {
      "index": [row["index"]], "clip_id": [row["clip_id"].encode()],
      "path": [row["path"].encode()], "segment": list(row["segment"] or []),
      "alt_text": [row["alt_text"].encode()], "captions": [c.encode() for c in row["captions"]],
      "mean_logprobs": row["mean_logprobs"], "num_tokens": row["num_tokens"]}
  if "frame_captions" in row:
    feats["frame_captions"] = [c.encode() for s in row["frame_captions"] for c in s]
  return records_lib.tf_example(feats, TFRECORD_KINDS)


class Units(records_lib.UnitFiles):
  """Work units of one auto-labeling version (rows as in viit_jax.autolabel's docstring)."""

  def write(self, index: int, rows: Sequence[Mapping[str, Any]],
            rejects: Sequence[rj.RejectRecord], meta: Mapping[str, Any]) -> None:
    self.commit(index, records_lib.tfrecord_bytes(row_example(r) for r in rows), rows,
                (dataclasses.asdict(r) for r in rejects), meta)


def read_manifest(dataset_dir: paths.PathLike) -> dict[str, Any]:
  """The manifest of a finished version (local or gs://)."""
  return records_lib.read_manifest(dataset_dir, "autolabel")


def caption_rows(dataset_dir: paths.PathLike) -> Iterator[dict[str, Any]]:
  """The caption rows of a finished version, unit by unit in the manifest's order."""
  root = paths.path(dataset_dir)
  for name in read_manifest(root)["units"]:
    yield from paths.read_jsonl(root / "units" / name)


def finalize(units: Units, num_units: int, settings: Mapping[str, Any],
             input_rejects: rj.Rejects) -> dict[str, Any] | None:
  """Writes rejects.jsonl, manifest.json (`settings` + counts, caption statistics, file lists) and
  CARD.md once every unit is finished; else None."""
  metas = [units.meta(i) for i in range(num_units)]
  if any(m is None for m in metas):
    return None
  clip_reasons: collections.Counter[str] = collections.Counter()
  first, every, alt = (caption_stats.CaptionStats(), caption_stats.CaptionStats(),
                       caption_stats.CaptionStats())
  captioned = 0
  with paths.atomic_writer(units.out_dir / "rejects.jsonl") as f:  # Streamed: millions of clips.
    f.write(paths.jsonl_bytes(dataclasses.asdict(r) for r in input_rejects.records))
    for i in range(num_units):
      unit_rejects = units.rejects(i)
      f.write(paths.jsonl_bytes(unit_rejects))
      clip_reasons.update(r["reason"] for r in unit_rejects)
      for r in units.rows(i):
        captioned += 1
        first.add(r["captions"][0])
        for c in r["captions"]:
          every.add(c)
        alt.add(r["alt_text"])
  reasons = clip_reasons + collections.Counter(input_rejects.counts)
  manifest = {
      **settings,
      "num_units": num_units,
      "num_clips_listed": settings["corpus"]["num_clips"],
      "num_captioned": captioned,
      "num_rejected": sum(clip_reasons.values()),
      "num_input_rows_rejected": input_rejects.total,
      "rejects_per_reason": dict(sorted(reasons.items())),
      "stats": {"first_caption": first.result(), "all_captions": every.result(),
                "alt_text": alt.result()},
      "files": {"tfrecord": "units/unit-*.tfrecord", "jsonl": "units/unit-*.jsonl",
                "rejects": "rejects.jsonl", "input_rejects": "input_rejects.jsonl"},
      "units": [units.path(i, "jsonl").name for i in range(num_units)],
      "runs": sorted(p.name for p in (units.out_dir / "runs").glob("*.json")),
      "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
  }
  paths.write_json(units.out_dir / "manifest.json", manifest)
  cards.write_card(units.out_dir)
  return manifest
