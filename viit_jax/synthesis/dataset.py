"""The versioned instruction dataset on disk: work units written atomically, and a manifest.

Layout of <workdir>/<version>/:
  settings.json                  what the version is bound to (backend, model, templates, seed, input)
  units/unit-NNNNN.tfrecord      tf.train.Example per accepted pair: clip_id, video_path, kind,
                                 question, answer, prompt_id (all bytes features)
  units/unit-NNNNN.jsonl         the same records as JSON lines (plus shots, backend)
  units/unit-NNNNN.rejects.jsonl {"prompt_id","clip_id","kind","reason","detail","reply"} per reject
  units/unit-NNNNN.meta.json     written LAST: its presence marks the unit finished
  input_rejects.jsonl            bad narrative lines (data.rejects.RejectRecord format)
  rejects.jsonl                  all units' rejects, merged when the version is complete
  manifest.json                  provenance and counts, written when every unit is finished
  runs/                          one JSON per process run (timings, back-end counters)

Every file goes through viit_jax.paths, so <workdir> may be local or on an object store (gs://):
each file is written whole and atomically (a temporary file renamed into place, or one upload).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from viit_jax import paths
from viit_jax import records as records_lib

RECORD_FEATURES = ("clip_id", "video_path", "kind", "question", "answer", "prompt_id")
TFRECORD_PATTERN = "units/unit-*.tfrecord"


@dataclasses.dataclass(frozen=True)
class Record:
  """One accepted instruction pair."""
  prompt_id: str
  clip_id: str
  video_path: str   # relative to the manifest's video_root
  kind: str
  question: str
  answer: str
  shots: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class RejectRow:
  prompt_id: str
  clip_id: str
  kind: str
  reason: str
  detail: str
  reply: str | None


def tfrecord_bytes(rows: Sequence[Record]) -> bytes:
  """The records as TFRecord file bytes of tf.train.Example (RECORD_FEATURES, bytes each)."""
  kinds = {k: "bytes" for k in RECORD_FEATURES}
  return records_lib.tfrecord_bytes(
      records_lib.tf_example({k: [getattr(r, k).encode("utf-8")] for k in RECORD_FEATURES}, kinds)
      for r in rows)


class Units(records_lib.UnitFiles):
  """Work units of one synthesized dataset version."""

  def write(self, index: int, records: Sequence[Record], rejects: Sequence[RejectRow],
            meta: dict[str, Any]) -> None:
    self.commit(index, tfrecord_bytes(records), (dataclasses.asdict(r) for r in records),
                (dataclasses.asdict(r) for r in rejects), meta)


def read_manifest(dataset_dir: paths.PathLike) -> dict[str, Any]:
  """The manifest of a finished version (local or gs://)."""
  return records_lib.read_manifest(dataset_dir, "synthesize")


def register_viit_tasks(dataset_dir: paths.PathLike, **kwargs: Any) -> list[str]:
  """Forwards to data.viit_tasks.register_viit_tasks (where the seqio registration lives; imported
  here lazily so that synthesis itself does not load TensorFlow/seqio)."""
  from data import viit_tasks  # pylint: disable=g-import-not-at-top
  return viit_tasks.register_viit_tasks(dataset_dir, **kwargs)
