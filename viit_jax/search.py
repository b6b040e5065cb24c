"""Text-to-video search over an auto-labeled corpus: a dual encoder's on-disk index of the corpus.

Shared by `viit_jax.serve` (the search page) and `viit_jax.filter_captions` (which keeps the
captions the dual encoder agrees with). `build_index` writes the index once; later runs reuse it.

Index layout (`<index_dir>/`, local or gs://), one shard per work unit of the corpus version:
  shards/shard-NNNNN.npy    float32[n, E]: the L2-normalised video embeddings of the unit's clips
                            that decoded, in row order
  shards/shard-NNNNN.json   written last (the shard's commit): {"clip_ids" [n], "caption_scores"
                            [n][K] (cosine of each caption to its own clip), "alt_text_scores" [n],
                            "rejects" [{clip_id, reason, detail}] of clips that did not decode}
  index.json                written when every shard exists: the dual encoder (path, step, variant),
                            the corpus version (path, manifest fingerprint), frames, E, shards
A killed build leaves whole shards; the next build skips them. An index made by another
checkpoint step or over another manifest is refused by name (`IndexMismatch`).

Process p of P builds the shards u with u % P == p on its own devices; process 0 writes index.json.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from data import preprocessors as pp
from data import registry
from data import tasks as tasks_lib
from data import video
from viit_jax import caption_sets
from viit_jax import decoding
from viit_jax import embed
from viit_jax import paths
from viit_jax import runtime
from viit_jax.models import dual_encoder as de_lib

INDEX_FILE = "index.json"
SHARDS = "shards"
DEFAULT_INDEX = "search_index"  # Under the dual encoder's workdir (default_index_dir).
MAX_QUERY_CHARS = 1000


class IndexMissing(FileNotFoundError):
  """No finished index at the path (build it: python -m viit_jax.serve --build_index ...)."""


class IndexMismatch(ValueError):
  """The index was built by another checkpoint step or over another corpus manifest."""


# ------------------------------------------------------------------------------------------------
# The dual encoder for inference.


@dataclasses.dataclass
class DualEncoder:
  """A trained dual encoder ready to embed: frames and text as it was trained on them.

  Attributes:
    source: the checkpoint (path, step, meta).
    embedder: the towers jitted for this process's devices.
    params: the parameters on those devices.
    vocab: its tokenizer.
    num_frames, fps, res, text_len: the frames and text length of its training data.
    dim: E, the width of its embeddings.
  """
  source: runtime.CheckpointSource
  embedder: embed.Embedder
  params: Any
  vocab: Any
  num_frames: int
  fps: float
  res: int
  text_len: int
  dim: int

  def texts(self, texts: Sequence[str]) -> np.ndarray:
    """float32[N, E] normalised text embeddings."""
    return self.embedder.texts(self.params, pp.text_tokens(self.vocab, list(texts),
                                                           self.text_len))

  def videos(self, frames: np.ndarray) -> np.ndarray:
    """uint8[N, T, H, W, 3] -> float32[N, E] normalised video embeddings."""
    return self.embedder.videos(self.params, frames)


def load_dual_encoder(workdir: str, *, step: int = -1, batch_size: int = 0) -> DualEncoder:
  """The dual encoder of a trainer workdir (viit_jax.train_dual_encoder) at `step` (-1: latest),
  on this process's devices; `batch_size` 0 = one row per device."""
  source = runtime.checkpoint_source(workdir, step)
  if not source.meta:
    raise ValueError(f"{workdir} is not a dual-encoder trainer workdir (its checkpoint has no "
                     "meta)")

  def trained(key: str) -> Any:
    value = source.trained("data", key)
    if not value:
      raise ValueError(f"the checkpoint {source.path} records no data.{key}")
    return value

  vocab_path = source.trained("data", "vocab_path") or registry.demo_vocab_path(
      trained("world_dir"))
  num_frames, fps, res = int(trained("num_frames")), float(trained("fps")), int(trained("res"))
  text_len = int(trained("text_len"))
  # The checkpoint's own variant, vocabulary size, dtype and layer layout.
  inherit = ml_collections.ConfigDict({"variant": "", "vocab_size": 0, "dtype": ""})
  model_cfg = runtime.model_config(inherit, de_lib.DualEncoderConfig, num_frames=num_frames,
                                   res=res, text_len=text_len, source=source)
  mesh = decoding.local_mesh({"data": 1, "fsdp": -1, "tensor": 1})
  params = runtime.load_params(model_cfg, source, mesh)
  embedder = embed.Embedder(de_lib.DualEncoder(model_cfg), mesh,
                            batch_size or len(jax.local_devices()))
  vocab = tasks_lib.vocabulary(paths.local_copy(vocab_path))
  return DualEncoder(source, embedder, params, vocab, num_frames, fps, res, text_len,
                     model_cfg.txt.out_features)


# ------------------------------------------------------------------------------------------------
# The corpus: a finished auto-labeling version.


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A finished auto-labeling version (viit_jax.autolabel's layout).

  Attributes:
    dir: the version directory (holds manifest.json and units/).
    manifest: its manifest.
    fingerprint: sha256 of manifest.json (an index is bound to it).
    video_root: where the rows' relative video paths live.
  """
  dir: paths.Path
  manifest: Mapping[str, Any]
  fingerprint: str
  video_root: str

  @property
  def name(self) -> str:
    """<autolabel workdir name>-<version>, e.g. label_viit-v1."""
    return f"{self.dir.parent.name}-{self.dir.name}"

  def unit_rows(self, u: int) -> list[dict[str, Any]]:
    """The caption rows of work unit u (viit_jax.autolabel's JSONL rows)."""
    return paths.read_jsonl(self.dir / "units" / self.manifest["units"][u])

  def video_path(self, row: Mapping[str, Any]) -> str:
    return str(paths.path(self.video_root) / row["path"])


def open_corpus(corpus: str, version: str = "", video_root: str = "") -> Corpus:
  """`corpus` is an auto-labeling version directory (it holds manifest.json) or the job's workdir,
  whose `version` (or its only finished version) is used; `video_root` '' = the manifest's."""
  root = paths.path(corpus)
  if not root.is_dir():
    raise FileNotFoundError(f"--corpus={corpus}: no such directory")
  if version:
    root = root / version
  elif not (root / "manifest.json").exists():
    finished = sorted(p.name for p in root.iterdir() if (p / "manifest.json").exists())
    if len(finished) != 1:
      raise FileNotFoundError(
          f"--corpus={corpus} holds {len(finished)} finished auto-labeling versions "
          f"({finished}); name one with --version" if finished else
          f"--corpus={corpus} holds no finished auto-labeling version (no */manifest.json)")
    root = root / finished[0]
  raw = (root / "manifest.json").read_bytes() if (root / "manifest.json").exists() else b""
  manifest = caption_sets.read_manifest(root)  # A clear error while unfinished.
  if "units" not in manifest or "corpus" not in manifest:
    raise ValueError(f"{root} is not an auto-labeling version (its manifest lists no units)")
  return Corpus(root, manifest, hashlib.sha256(raw).hexdigest(),
                video_root or manifest["corpus"]["video_root"])


# ------------------------------------------------------------------------------------------------
# Building the index.


def default_index_dir(de: DualEncoder, corpus: Corpus) -> paths.Path:
  """<dual encoder workdir>/search_index/<corpus workdir name>-<version>-step<N>."""
  return paths.path(de.source.path) / DEFAULT_INDEX / f"{corpus.name}-step{de.source.step}"


def identity(de: DualEncoder, corpus: Corpus) -> dict[str, Any]:
  """What an index is bound to: the checkpoint and the corpus manifest."""
  return {"dual_encoder": {"path": de.source.path, "step": de.source.step,
                           "experiment": de.source.meta.get("experiment"),
                           "variant": de.source.trained("model", "variant")},
          "corpus": {"path": str(corpus.dir), "manifest_sha256": corpus.fingerprint},
          "frames": {"num_frames": de.num_frames, "fps": de.fps, "res": de.res,
                     "mode": "uniform"},
          "text_len": de.text_len}


# What must match between an index and the request for it: (section, key).
_BINDING = (("dual_encoder", "step"), ("corpus", "manifest_sha256"))


def _check_identity(index_dir: paths.Path, have: Mapping[str, Any],
                    want: Mapping[str, Any]) -> None:
  diffs = [f"{k}: index {have.get(k)} != wanted {want[k]}" for k, key in _BINDING
           if have.get(k, {}).get(key) != want[k][key]]
  if diffs:
    raise IndexMismatch(f"the index at {index_dir} was built for something else ("
                        + "; ".join(diffs) + "); delete it or pass another --index")


def decode_rows(corpus: Corpus, rows: Sequence[Mapping[str, Any]], num_frames: int, fps: float,
                res: int, workers: int) -> list[np.ndarray | video.VideoError]:
  """Each row's clip as uint8[T, res, res, 3] (the centred window), or the VideoError it gave."""
  def one(row: Mapping[str, Any]) -> np.ndarray | video.VideoError:
    segment = tuple(row["segment"]) if row.get("segment") else None
    return video.decode_or_error(corpus.video_path(row), num_frames, fps, res, segment=segment)

  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    return list(pool.map(one, rows))


def _shard(index_dir: paths.Path, u: int, suffix: str) -> paths.Path:
  return index_dir / SHARDS / f"shard-{u:05d}.{suffix}"


def build_shard(de: DualEncoder, corpus: Corpus, u: int, index_dir: paths.Path,
                decode_workers: int) -> dict[str, Any]:
  """Embeds work unit u's clips and scores their captions; writes the shard (json last)."""
  rows = corpus.unit_rows(u)
  decoded = decode_rows(corpus, rows, de.num_frames, de.fps, de.res, decode_workers)
  ok = [(r, f) for r, f in zip(rows, decoded) if isinstance(f, np.ndarray)]
  rejects = [{"clip_id": r["clip_id"], "reason": f.reason, "detail": f.detail}
             for r, f in zip(rows, decoded) if not isinstance(f, np.ndarray)]
  empty = np.zeros((0, de.dim), np.float32)
  videos = de.videos(np.stack([f for _, f in ok])) if ok else empty
  texts = [t for r, _ in ok for t in (*r["captions"], r["alt_text"])]
  text_emb = de.texts(texts) if texts else empty
  caption_scores, alt_scores, at = [], [], 0
  for (r, _), v in zip(ok, videos):
    k = len(r["captions"])
    sims = text_emb[at:at + k + 1] @ v
    caption_scores.append([round(float(s), 6) for s in sims[:k]])
    alt_scores.append(round(float(sims[k]), 6))
    at += k + 1
  buf = io.BytesIO()
  np.save(buf, videos.astype(np.float32))
  paths.write_atomic(_shard(index_dir, u, "npy"), buf.getvalue())
  meta = {"unit": corpus.manifest["units"][u], "clip_ids": [r["clip_id"] for r, _ in ok],
          "caption_scores": caption_scores, "alt_text_scores": alt_scores, "rejects": rejects}
  paths.write_json(_shard(index_dir, u, "json"), meta)
  return meta


def build_index(de: DualEncoder, corpus: Corpus, index_dir: paths.PathLike, *,
                decode_workers: int = 2, log: Callable[[str], None] = print) -> dict[str, Any]:
  """Builds (or finishes) the index of `corpus` by `de` at `index_dir`; returns its index.json.

  An existing finished index of the same checkpoint step and manifest is returned as it is; one
  of another is refused (IndexMismatch)."""
  from viit_jax import records as records_lib  # pylint: disable=g-import-not-at-top
  index_dir = paths.path(index_dir)
  want = identity(de, corpus)
  if (index_dir / INDEX_FILE).exists():
    have = paths.read_json(index_dir / INDEX_FILE)
    _check_identity(index_dir, have, want)
    log(f"[index] {index_dir}: built already ({have['num_clips']} clips), reused")
    return have
  try:
    records_lib.bind_settings(index_dir, want)  # A partial index of something else is refused.
  except ValueError as e:
    raise IndexMismatch(str(e)) from e
  started = time.time()
  units = len(corpus.manifest["units"])
  procs, me = jax.process_count(), jax.process_index()
  mine = [u for u in range(units) if u % procs == me]
  todo = [u for u in mine if not _shard(index_dir, u, "json").exists()]
  log(f"[index] {corpus.dir}: {units} shards ({len(mine) - len(todo)} of this process's "
      f"{len(mine)} done already) -> {index_dir}")
  clips = 0
  for i, u in enumerate(todo):
    meta = build_shard(de, corpus, u, index_dir, decode_workers)
    clips += len(meta["clip_ids"]) + len(meta["rejects"])
    rate = clips / max(time.time() - started, 1e-9)
    left = (len(todo) - i - 1) * clips / (i + 1) / max(rate, 1e-9)
    log(f"[index] shard {u + 1}/{units}: {len(meta['clip_ids'])} clips embedded, "
        f"{len(meta['rejects'])} rejected; {rate:.1f} clips/s, ETA {runtime.format_eta(left)}")
  if procs > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("search_index_shards_written")
  metas = [paths.read_json(_shard(index_dir, u, "json")) for u in range(units)]
  reasons: dict[str, int] = {}
  for m in metas:
    for r in m["rejects"]:
      reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
  record = {**want, "num_clips": sum(len(m["clip_ids"]) for m in metas),
            "num_rejected": sum(len(m["rejects"]) for m in metas),
            "rejects_per_reason": dict(sorted(reasons.items())),
            "dim": de.dim, "num_shards": units,
            "seconds": round(time.time() - started, 3)}
  if me == 0:
    paths.write_json(index_dir / INDEX_FILE, record)
  log(f"[index] {record['num_clips']} clips, {record['num_rejected']} rejected "
      f"{record['rejects_per_reason']}, {record['seconds']:.1f}s")
  return record


# ------------------------------------------------------------------------------------------------
# Reading the index.


@dataclasses.dataclass(frozen=True)
class Hit:
  clip_id: str
  score: float


class Index:
  """A finished index in memory.

  Attributes:
    record: its index.json.
    clip_ids: [N] in shard order.
    embeddings: float32[N, E], L2-normalised.
    caption_scores: clip id -> the cosine of each of its captions to it, float[K].
    alt_text_scores: clip id -> the cosine of its alt-text to it.
    rejected: clip id -> the reason it is not indexed (it did not decode).
  """

  def __init__(self, index_dir: paths.PathLike):
    index_dir = paths.path(index_dir)
    if not (index_dir / INDEX_FILE).exists():
      raise IndexMissing(f"no search index at {index_dir} (no {INDEX_FILE}); build it with "
                         "python -m viit_jax.serve --build_index_only --dual_encoder=... "
                         "--corpus=...")
    self.dir = index_dir
    self.record = paths.read_json(index_dir / INDEX_FILE)
    self.clip_ids: list[str] = []
    self.caption_scores: dict[str, list[float]] = {}
    self.alt_text_scores: dict[str, float] = {}
    self.rejected: dict[str, str] = {}  # Clip id -> why it did not decode.
    blocks = []
    for u in range(int(self.record["num_shards"])):
      meta = paths.read_json(_shard(index_dir, u, "json"))
      blocks.append(np.load(io.BytesIO(_shard(index_dir, u, "npy").read_bytes())))
      self.clip_ids += meta["clip_ids"]
      self.caption_scores.update(zip(meta["clip_ids"], meta["caption_scores"]))
      self.alt_text_scores.update(zip(meta["clip_ids"], meta["alt_text_scores"]))
      self.rejected.update((r["clip_id"], r["reason"]) for r in meta["rejects"])
    dim = int(self.record["dim"])
    self.embeddings = (np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32))
    if self.embeddings.shape != (len(self.clip_ids), dim):
      raise ValueError(f"{index_dir}: embeddings {self.embeddings.shape} do not match "
                       f"{len(self.clip_ids)} clips x {dim}")

  def check(self, de: DualEncoder, corpus: Corpus) -> None:
    """Raises IndexMismatch unless the index was built by `de`'s step over `corpus`."""
    _check_identity(self.dir, self.record, identity(de, corpus))

  def search(self, query: np.ndarray, k: int) -> list[Hit]:
    """The k clips most similar to query float32[E] (cosine), best first; ties by shard order."""
    scores = self.embeddings @ query.astype(np.float32)
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros((0,), np.int64)
    top = top[np.lexsort((top, -scores[top]))]
    return [Hit(self.clip_ids[i], float(scores[i])) for i in top]
