"""Phase 4: trains the video-text dual encoder (ViT-st video tower + text tower) contrastively.

  python -m viit_jax.train_dual_encoder --config=configs/<x>.py[:key=value,...] --workdir=DIR [--resume]

Reads top to bottom: config -> distributed start-up and mesh -> caption sources (seqio tasks) ->
model -> `loop.Task` (init, contrastive loss, data by step, retrieval eval) -> `loop.run`, the step
loop the VLM trainer uses too (sharded init, restore_or_init, AOT step, NaN guard, checkpoints,
TensorBoard + JSONL metrics, progress).

Model: `viit_jax.models.dual_encoder.DualEncoder` (`img/` video tower, `txt/` text tower, `t` log
temperature, `b` bias). Initialisation comes from the loop's `init_from` + `init_assignment_map`:
- demo: a VLM trainer workdir (phase 0/1): its per-frame image ViT `img/` trunk (patch embedding,
  spatial position embedding PE_s, encoder blocks) is loaded by name into ViT-st; PE_t (the new
  temporal position embedding, PE[t, n] = PE_t[t] + PE_s[n]), the MAP head, the output head, the
  text tower, `t` and `b` keep their fresh initialisation (configs/dual_encoder_demo.py's map).
  That is `import_weights.vit_to_vit_st` done by the restore: PE_t ~ N(0, 1/D) either way.
- real: an imported SigLIP two-tower checkpoint (python -m viit_jax.import_weights --kind=siglip
  --variant=siglip-b16-video), which already holds ViT-st with a fresh PE_t and SigLIP's text tower.

Loss (`dual_encoder.loss`), on the L2-normalised embeddings of the *global* batch:
- softmax: symmetric InfoNCE, (CE(video->text) + CE(text->video)) / 2 over logits
  z_v . z_t * exp(t) with a learnable log temperature t. The step is jitted over the global batch
  sharded along the mesh's batch axes, so `z_v @ z_t.T` is the global B x B matrix: XLA gathers the
  embeddings of every data-parallel shard, i.e. each example has all B - 1 negatives of the global
  batch (tests/test_dual_encoder_train.py: 8 devices == 1 device on the same global batch).
- sigmoid: SigLIP's loss, logits z_v . z_t * exp(t) + b, +1 on the diagonal, -1 elsewhere.
Gradient accumulation would shrink the negatives to a micro-batch, so `train.micro_batches` must be 1.

Data (`dual_encoder.caption_source`, e.g. `viit` or `alt_text:1+viit:1`): each source is a seqio
task of clips with K >= 1 captions:
  alt_text        the pool's alt-text (WebVid `name`; demo_pool / webvid_pool / internvid_pool)
  smit            S-MiT captions (demo_smit_caption / smit_caption)
  stills          COCO-style image captions (demo_stills_caption / coco_caption), each image a
                  static clip of data.num_frames equal frames (T=1: the image CLIP the demo's
                  video dual encoders start from, as the paper's start from an image CLIP)
  viit            viit_jax.autolabel output (mode=viit) in `dual_encoder.viit_captions_dir`
  frame_captions  viit_jax.autolabel output (mode=frame_captioner) in `dual_encoder.frame_captions_dir`
                  (both registered with data.caption_tasks: all K captions of each clip)
Several sources are mixed per example with the given rates (slice / shard:
`tf.data.Dataset.sample_from_datasets`, seeded; indexed: a draw per position). Per example, with
r = stateless randoms keyed by (seed, clip key, step):
  caption   one of the clip's K captions, uniformly (so a new draw each step the clip comes back);
  frames    scale jitter: resized by s ~ U(scale_jitter_min, scale_jitter_max) (all T frames alike,
            bilinear, antialiased), then a random res x res crop, or, for s < 1, placed at a random
            offset on a res x res canvas of value 127 (~0 after the [-1, 1] normalisation);
  text      lower-cased, SentencePiece ids, cut to text_len - 1, then EOS, padded with EOS (id 1):
            SigLIP's convention (its text tower pools the last token, always EOS).
The stream order is a function of the seed; the caption/crop draws of batch s depend on (seed,
clip, s) only; so batch s is the same whether the run was interrupted or not.
`data.process_split` (as in viit_jax.train):
  indexed  the order of data.indexed: the example at global position k = s * B + row is a function
           of (seed, k) (source drawn with the rates, then a seeded permutation of its items per
           epoch); each process decodes only its rows of each global batch and resuming at step N
           reads nothing before position N * B. The items' raw captions are read directly (no
           seqio preprocessor runs; the stills are one example per image). A clip without any
           non-empty caption is rejected as `no_caption` (counted in its task's rejects) and its
           position takes the next candidate, like an undecodable clip (CaptionItems).
  slice    every process reads the whole mixed stream above and keeps its rows (each decodes every
           example; resume replays the stream up to its step; clips without caption are dropped).
  shard    each process reads 1/P of each source (the order depends on the process count).

Eval (every `train.eval_every` steps and at the end): text->video and video->text R@1/5/10,
MedR, MeanR over the first `train.eval_batches * train.batch_size` pairs of `data.eval_task`
(the 1k-A-style MSR-VTT set), embeddings computed batched and sharded (`Embedder`), metrics
with `viit_jax.metrics.retrieval.sharded_retrieval_metrics` (ties: the expectation over random
tie-breaking).

Config: configs/base.py plus the `dual_encoder` section declared by
configs/dual_encoder_demo.py:add_dual_encoder_section (to move into the base).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import jax
import ml_collections
import numpy as np
import seqio
import tensorflow as tf

from data import caption_tasks
from data import indexed
from data import preprocessors as pp
from data import registry
from data import vlm_batches
from viit_jax import embed
from viit_jax import aot
from viit_jax import loop
from viit_jax import programs
from viit_jax import runtime
from viit_jax.models import dual_encoder as de_lib

CaptionSource = caption_tasks.CaptionSource  # One training stream (dual_encoder.caption_source).
BATCH_KEYS = ("frames", "tokens")
NO_CAPTION = "no_caption"  # Reject reason: an item whose caption field holds no non-empty text.


# ------------------------------------------------------------------------------------------------
# tf.data: caption draw, scale jitter, text tokens.


def scale_jitter_crop(frames: tf.Tensor, u: tf.Tensor, *, res: int, min_scale: float,
                      max_scale: float) -> tf.Tensor:
  """Scale jitter then a res x res crop: uint8[T, H, W, 3] -> uint8[T, res, res, 3].

  u: f32[3] uniform randoms in [0, 1) (scale, y offset, x offset). The frames are resized to
  round(s * res) (s = min + (max - min) * u[0], both sides: decoded frames are square) and
  cropped at a random offset; when smaller than res they are placed on a canvas of 127.
  """
  s = min_scale + (max_scale - min_scale) * u[0]
  size = tf.maximum(tf.cast(tf.round(s * res), tf.int32), 1)
  x = tf.image.resize(tf.cast(frames, tf.float32), [size, size], method="bilinear",
                      antialias=True)
  canvas = tf.maximum(size, res)
  pad = canvas - size
  py = tf.cast(tf.floor(u[1] * tf.cast(pad + 1, tf.float32)), tf.int32)
  px = tf.cast(tf.floor(u[2] * tf.cast(pad + 1, tf.float32)), tf.int32)
  x = tf.pad(x - 127.0, [[0, 0], [py, pad - py], [px, pad - px], [0, 0]]) + 127.0
  extra = canvas - res
  cy = tf.cast(tf.floor(u[1] * tf.cast(extra + 1, tf.float32)), tf.int32)
  cx = tf.cast(tf.floor(u[2] * tf.cast(extra + 1, tf.float32)), tf.int32)
  x = x[:, cy:cy + res, cx:cx + res, :]
  x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
  return tf.ensure_shape(x, [frames.shape[0], res, res, 3])


def _source_examples(source: CaptionSource, *, seed: int, num_frames: int,
                     shard: tuple[int, int] | None) -> tf.data.Dataset:
  """{"frames": uint8[T,H,W,3], "captions": str[K], "key": str} of one source, repeated.

  Images (T=1: the stills source) become static clips of `num_frames` equal frames.
  """
  provider = seqio.get_mixture_or_task(source.task)
  ds = provider.get_dataset(
      sequence_length=None, split=source.split, shuffle=True, seed=seed,
      shard_info=None if shard is None else seqio.ShardInfo(index=shard[0], num_shards=shard[1]),
      num_epochs=None, trim_output_features=False)

  def fn(ex):
    caps = tf.reshape(ex[source.captions_field], [-1])
    caps = tf.boolean_mask(caps, tf.strings.length(tf.strings.strip(caps)) > 0)
    key = ex[source.key_field]
    if key.dtype != tf.string:
      key = tf.strings.as_string(key)
    key = tf.strings.join([source.name, key], ":")
    frames = ex["frames"]
    if frames.shape[0] == 1 and num_frames > 1:
      frames = tf.tile(frames, [num_frames, 1, 1, 1])
    return {"frames": frames, "captions": caps, "key": key}

  ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.filter(lambda ex: tf.size(ex["captions"]) > 0)


def _draw_fn(config: ml_collections.ConfigDict, vocab: seqio.SentencePieceVocabulary
             ) -> Callable[[tf.Tensor, Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]:
  """(step int64[], {"frames": uint8[T,H,W,3], "captions": str[K], "key": str}) ->
  {"frames": uint8[T, R, R, 3], "tokens": int32[S]}: one of the K captions and the scale-jitter
  crop, drawn with stateless randoms seeded by (hash(seed, clip key), step), so a clip's draws
  at a step are the same whatever the stream's order, process count or restart."""
  d, de = config.data, config.dual_encoder
  seed = int(config.seed)
  res, seq_len = int(d.res), int(d.text_len)
  lo, hi = float(de.scale_jitter_min), float(de.scale_jitter_max)
  if not 0 < lo <= hi:
    raise ValueError(f"dual_encoder.scale_jitter_min/max must satisfy 0 < min <= max, got {lo}, "
                     f"{hi}")

  def draw(step: tf.Tensor, ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    clip = tf.strings.to_hash_bucket_strong(ex["key"], 2**62, key=[seed, 0x5EED])
    u = tf.random.stateless_uniform([4], seed=tf.stack([clip, step]), dtype=tf.float32)
    k = tf.size(ex["captions"])
    i = tf.minimum(tf.cast(tf.floor(u[0] * tf.cast(k, tf.float32)), tf.int32), k - 1)
    return {"frames": scale_jitter_crop(ex["frames"], u[1:], res=res, min_scale=lo,
                                        max_scale=hi),
            "tokens": pp.text_tokens_tf(vocab, ex["captions"][i], seq_len)}

  return draw


def train_dataset(config: ml_collections.ConfigDict, vocab: seqio.SentencePieceVocabulary,
                  sources: Sequence[CaptionSource], *, start: int, batch_size: int,
                  shard: tuple[int, int] | None) -> tf.data.Dataset:
  """Batches {"frames": uint8[B, T, R, R, 3], "tokens": int32[B, S]} number start, start + 1, ...

  (`data.process_split` slice / shard.) Example j of the stream belongs to batch j // B; its
  caption and crop are drawn with stateless randoms seeded by (hash(seed, clip key), j // B).
  Resuming at `start` replays (decodes) the start * B examples before it.
  """
  d = config.data
  seed = int(config.seed)
  streams = [_source_examples(s, seed=seed + i, num_frames=int(d.num_frames), shard=shard)
             for i, s in enumerate(sources)]
  if len(streams) == 1:
    ds = streams[0]
  else:
    rates = np.array([s.rate for s in sources], np.float64)
    ds = tf.data.Dataset.sample_from_datasets(streams, weights=list(rates / rates.sum()),
                                              seed=seed, stop_on_empty_dataset=False)
  draw = _draw_fn(config, vocab)
  ds = ds.enumerate().skip(int(start) * batch_size)
  ds = ds.map(lambda index, ex: draw(index // batch_size, ex),
              num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size, drop_remainder=True).prefetch(2)


# ------------------------------------------------------------------------------------------------
# data.process_split=indexed: the stream of data.indexed over the sources' items.


def _texts(value: object) -> list[str]:
  """A raw caption field (str, bytes, a list or array of them) -> its strings."""
  if isinstance(value, (str, bytes)):
    value = [value]
  elif isinstance(value, np.ndarray):
    value = value.ravel().tolist()
  return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
          for v in value]


class CaptionItems:
  """A caption source's items for data.indexed.Stream (an `indexed.Items` adapter).

  decode(i, seed) -> {"frames": uint8[T, R, R, 3], "captions": str[K'] (the item's non-empty
  captions, K' >= 1), "key": "<source>:<clip id>"}, or None when the wrapped item is rejected
  (counted by the wrapped Items) or has no non-empty caption (counted here as `no_caption` in
  the task's rejects). The stream then fills the position with its next candidate: positions
  stay 1:1 with examples, whatever the process count (the slice path filters such clips out,
  which shifts every later position). Images (T = 1: the stills source) become static clips of
  `num_frames` equal frames.
  """

  def __init__(self, inner: indexed.Items, source: CaptionSource, num_frames: int):
    self.inner = inner
    self.source = source
    self.num_frames = num_frames
    self.name = inner.name
    self.rejects = inner.rejects

  def __len__(self) -> int:
    return len(self.inner)

  def describe(self, i: int) -> str:
    return self.inner.describe(i)

  def _captions(self, fields: Mapping[str, object], i: int) -> list[str] | None:
    """The non-empty captions of item i's fields, or None (counted as no_caption)."""
    field = self.source.item_captions_field
    if field not in fields:  # A wrong field name is a bug, not bad data: fail loudly.
      raise KeyError(f"caption source {self.source.name}: item {self.describe(i)} of task "
                     f"{self.name} has no field {field!r} (fields: {sorted(fields)})")
    captions = [c for c in _texts(fields[field]) if c.strip()]
    if not captions:
      self.rejects.add("captions", self.describe(i), NO_CAPTION,
                       f"field {field!r} holds no non-empty caption")
      return None
    return captions

  def decode(self, i: int, seed: int) -> indexed.Example | None:
    if isinstance(self.inner, indexed.IndexedItems):
      # The item's fields are known before decoding: a clip without caption costs no decode.
      if self._captions(self.inner.items[i].fields, i) is None:
        return None
    ex = self.inner.decode(i, seed)
    if ex is None:
      return None
    captions = self._captions(ex, i)
    if captions is None:
      return None
    frames = np.asarray(ex["frames"])
    if frames.shape[0] == 1 and self.num_frames > 1:
      frames = np.repeat(frames, self.num_frames, axis=0)
    key = _texts(ex[self.source.key_field])[0]  # as tf.strings.as_string in the slice path
    return {"frames": frames, "captions": captions, "key": f"{self.source.name}:{key}"}


def caption_stream(config: ml_collections.ConfigDict, sources: Sequence[CaptionSource], *,
                   process_index: int, process_count: int) -> indexed.Stream:
  """The indexed stream over the sources' items (mixed with their rates, seeded by config.seed):
  process `process_index` of `process_count` decodes only its rows of each global batch.

  The sources' seqio preprocessors do not run: they only build the VLM's prefix / suffix; the
  dual encoder reads the raw item's captions (CaptionSource.item_captions_field). The stills
  source is thus one example per image (not one per caption, as flatten_captions makes), one of
  its captions drawn per step like the K captions of a clip.
  """
  d = config.data
  items: list[indexed.Items] = []
  for source in sources:
    task = seqio.get_mixture_or_task(source.task)
    if not isinstance(task, seqio.Task) or not hasattr(task.source, "indexed"):
      raise ValueError(f"caption source {source.name}: task {source.task} has no random access "
                       f"({type(getattr(task, 'source', task)).__name__}, e.g. prepared TFDS "
                       "shards); use data.process_split=slice or shard")
    items.append(CaptionItems(task.source.indexed(source.split, task.name), source,
                              int(d.num_frames)))
  return indexed.Stream(items, [s.rate for s in sources], seed=int(config.seed),
                        global_batch=int(config.train.batch_size), process_index=process_index,
                        process_count=process_count, workers=int(d.decode_workers),
                        cache=bool(d.cache_decoded), time_limit_s=float(d.decode_time_limit_s))


def indexed_dataset(config: ml_collections.ConfigDict, vocab: seqio.SentencePieceVocabulary,
                    stream: indexed.Stream, *, start: int) -> tf.data.Dataset:
  """This process's rows of global batches start, start + 1, ...: {"frames": uint8[b, T, R, R,
  3], "tokens": int32[b, S]}, b = the stream's local batch. Nothing before step `start` is read.

  Row j (from `start` on) is at step start + j // b: its caption and crop are drawn as in the
  slice path, from (clip key, step), so they do not depend on the process count.
  """
  local = stream.local_batch
  num_frames = int(config.data.num_frames)

  def rows() -> Iterator[dict[str, object]]:
    for j, (_, ex) in enumerate(stream.examples(start)):
      yield {"step": np.int64(start + j // local), **ex}

  signature = {"step": tf.TensorSpec([], tf.int64),
               "frames": tf.TensorSpec([num_frames, None, None, 3], tf.uint8),
               "captions": tf.TensorSpec([None], tf.string),
               "key": tf.TensorSpec([], tf.string)}
  ds = tf.data.Dataset.from_generator(rows, output_signature=signature)
  draw = _draw_fn(config, vocab)
  ds = ds.map(lambda ex: draw(ex["step"], ex), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(local, drop_remainder=True).prefetch(2)


def make_data_fn(config: ml_collections.ConfigDict, vocab: seqio.SentencePieceVocabulary,
                 sources: Sequence[CaptionSource], *, process_index: int | None = None,
                 process_count: int | None = None
                 ) -> Callable[[int], Iterator[dict[str, np.ndarray]]]:
  """first step -> iterator of this process's rows of global batches first, first + 1, ...:
  {"frames": uint8[b, T, R, R, 3], "tokens": int32[b, S]}, b = batch_size / process count.

  `data.process_split` as in viit_jax.train: `indexed` (each process decodes only its rows, by
  index: order a function of (seed, step), independent of the process count; resuming at step N
  reads nothing before it), `slice` (every process reads the global stream and keeps its rows;
  order independent of the process count; resume replays the stream) or `shard` (each process
  reads 1/P). process_index / process_count default to JAX's (tests pass them to play one
  process of several).
  """
  b = int(config.train.batch_size)
  p, n, local, mode = vlm_batches.process_split(config, process_index, process_count)

  def data_fn(start: int) -> Iterator[dict[str, np.ndarray]]:
    if mode == "indexed":
      stream = caption_stream(config, sources, process_index=p, process_count=n)
      for batch in pp.numpy_iterator(indexed_dataset(config, vocab, stream, start=start)):
        yield {k: batch[k] for k in BATCH_KEYS}
      return
    if mode == "slice":
      ds = train_dataset(config, vocab, sources, start=start, batch_size=b, shard=None)
    else:
      ds = train_dataset(config, vocab, sources, start=start, batch_size=local, shard=(p, n))
    for batch in pp.numpy_iterator(ds):
      if mode == "slice":
        yield {k: batch[k][p * local:(p + 1) * local] for k in BATCH_KEYS}
      else:
        yield {k: batch[k] for k in BATCH_KEYS}

  return data_fn


# ------------------------------------------------------------------------------------------------
# Model and loss (pure functions; the loop jits the step).


def make_eval_fn(config: ml_collections.ConfigDict, model: de_lib.DualEncoder,
                 vocab: seqio.SentencePieceVocabulary, mesh: jax.sharding.Mesh):
  """(params, step) -> EvalResult of retrieval on data.eval_task, or None when off."""
  if not config.data.eval_task or config.train.eval_batches <= 0:
    return None
  max_pairs = int(config.train.eval_batches) * int(config.train.batch_size)
  data = embed.load_retrieval_set(config.data.eval_task, config.data.eval_split, max_pairs)
  tokens = pp.text_tokens(vocab, data.texts, int(config.data.text_len))
  embedder = embed.Embedder(model, mesh, int(config.train.batch_size) // jax.process_count())

  def eval_fn(params, step: int) -> loop.EvalResult:
    del step
    m = embed.retrieval_eval(embedder, params, data, tokens)
    scalars = {f"retrieval/{k}": v for k, v in m.items()}
    scalars["retrieval/num_texts"] = float(len(data.texts))
    return loop.EvalResult(scalars)

  return eval_fn


# ------------------------------------------------------------------------------------------------
# Entry point.


def build_task(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> loop.Task:
  """The loop.Task of a dual-encoder run (registers data tasks, builds the model)."""
  if config.data.task:
    raise ValueError(f"data.task={config.data.task!r} is not used by the dual-encoder trainer; "
                     "set dual_encoder.caption_source instead (and data.task='')")
  d = config.data
  vocab = registry.register_for_training(d, prepared_now=False)
  cfg = programs.dual_encoder_model_config(config, vocab.vocab_size)
  sources = caption_tasks.caption_sources(config, vocab.sentencepiece_model_file)
  registry.register_prepared(d)  # After the auto-labeled caption tasks, which it may name.
  return programs.dual_encoder_task(
      config, cfg, data_fn=make_data_fn(config, vocab, sources),
      eval_fn=make_eval_fn(config, de_lib.DualEncoder(cfg), vocab, mesh))


def main(args: runtime.Args) -> int:
  de = args.config.dual_encoder
  return loop.main(args, build_task,
                   describe=f"; captions {de.caption_source!r}, loss {de.loss}")


if __name__ == "__main__":
  runtime.run(main, resume=True, compile_only=aot.trainer_compile_only)
