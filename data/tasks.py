"""seqio Tasks and Mixtures for every phase and evaluation set, demo world and real data sets.

Every task yields examples with the output features

  "frames"  uint8[T, H, W, 3]  (seqio.Feature, PassThroughVocabulary, rank 4, no EOS)
  "prefix"  int32[Lp]          prompt tokens (no BOS/EOS)
  "suffix"  int32[Ls]          target tokens (no EOS)

plus "prefix_pretokenized"/"suffix_pretokenized" text and the evaluation fields of each task
(passed through, not trimmed). `data.preprocessors.batch_for_model` turns them into model batches
[BOS + prefix + "\\n" | suffix + EOS].

Tasks (demo name / real name: splits; extra fields):
  demo_stills_caption / coco_caption (T=1): train, val. One example per caption; prompt
      "Generate the alt-text:"; image_id, references (all captions of the image).
  demo_smit_caption / smit_caption: train (random temporal window), val; video_id, caption,
      references.
  demo_pool / webvid_pool, internvid_pool: train; the unlabeled pool for auto-labeling: clip_id,
      alt_text; prefix = caption prompt, suffix = alt-text.
  demo_msrvtt_caption / msrvtt_caption: the MSR-VTT splits present (test in the demo);
      video_id, references (all captions; suffix = the first one).
  demo_msrvtt_retrieval / msrvtt_retrieval: test (the 1k-A pairs); video_id, key, text,
      captions (= [text]).
  demo_msrvtt_full_retrieval / msrvtt_full_retrieval: the MSR-VTT splits present (test in the
      demo), one example per clip with all its sentences (every sentence is a retrieval query: the
      "full" protocol); video_id, key, captions.
  demo_msrvtt_qa / msrvtt_qa: the MSR-VTT-QA splits present; as nextqa_oe (type: the question
      word).
  demo_anet_caption / anet_caption: ActivityNet Captions val_1, val_2 (train): one example per
      captioned segment (frames from the segment); key "<video>_<i>", video_id, references.
  demo_anet_qa / anet_qa: ActivityNet-QA splits present; as nextqa_oe (type: ANET_QA_TYPES).
  demo_vatex_retrieval / vatex_retrieval: VATEX splits present, one example per clip with its
      English captions (every caption is a retrieval query); video_id, key, captions.
  demo_nextqa_oe / nextqa_oe: val, test; prefix "Answer in en: <question>", suffix = answer;
      video_id, qid (int32), key ("<video>_<qid>"), type, question, answer, answers.
  demo_kinetics / kinetics: test; prefix = caption prompt, suffix = label; clip_id, label,
      label_id (index in task_info(name).labels[split]).
  The VIIT mixture slot: `register_viit_mixture(name, task_rates)`; the instruction-synthesis
  code registers its tasks (e.g. with `register_video_text_task`) and calls it.

Sources: the direct path decodes mp4 with PyAV inside a `seqio.FunctionDataSource` (tf.data
generator); with `tfds_data_dir`, real data sets that have a TFDS builder are read from prepared
shards with `seqio.TfdsDataSource` (prepare them with `python -m data.tfds_builders`). Both give
the same raw examples (data.tfds_builders). Bad rows/clips met by the direct path are skipped and
counted in `task_info(name).rejects` (and appended to <rejects_dir>/<task>.jsonl when given).

Registering again under the same name replaces the task (idempotent).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import pathlib
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from data import indexed as indexed_lib
from data import preprocessors as pp
from data import readers
from data import tfds_builders as tb
from data.rejects import Rejects
from data.tfds_builders import ClipItem, Sampling
from viit_jax.metrics import task_fns

ItemsFn = Callable[[str, Rejects], Iterable[ClipItem]]

DEMO_TASK_NAMES = {
    "coco_caption": "demo_stills_caption", "smit_caption": "demo_smit_caption",
    "webvid_pool": "demo_pool", "msrvtt_caption": "demo_msrvtt_caption",
    "msrvtt_retrieval": "demo_msrvtt_retrieval",
    "msrvtt_full_retrieval": "demo_msrvtt_full_retrieval", "msrvtt_qa": "demo_msrvtt_qa",
    "nextqa_oe": "demo_nextqa_oe", "anet_caption": "demo_anet_caption",
    "anet_qa": "demo_anet_qa", "vatex_retrieval": "demo_vatex_retrieval",
    "kinetics": "demo_kinetics"}
REAL_DATA_SETS = ("msrvtt", "nextqa", "activitynet", "vatex", "webvid", "internvid", "smit",
                  "kinetics", "coco")


@dataclasses.dataclass(frozen=True)
class TaskInfo:
  """What a registered task reads, for evaluators and for reject reports.

  Attributes:
    name: task name.
    dataset: data set key ("msrvtt", "nextqa", ..., "video_text" for generic tasks).
    root: the data set's root directory (None for generic tasks).
    splits: seqio split names.
    backend: "pyav" (decoded on the fly) or "tfds" (prepared shards).
    rejects: skipped rows/clips of the direct path (empty for the TFDS path: see
      tfds_builders.prepared_rejects for the counts of the build).
    num_frames, fps, res: frame sampling.
    labels: Kinetics only: split -> class names (label_id indexes them).
  """
  name: str
  dataset: str
  root: pathlib.Path | None
  splits: tuple[str, ...]
  backend: str
  rejects: Rejects
  num_frames: int
  fps: float
  res: int
  labels: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


_INFO: dict[str, TaskInfo] = {}


def task_info(name: str) -> TaskInfo:
  """The TaskInfo of a task registered by this module."""
  if name not in _INFO:
    raise KeyError(f"task {name!r} was not registered by data.tasks; have {sorted(_INFO)}")
  return _INFO[name]


def task_rejects(name: str) -> Rejects:
  """The Rejects (per-reason counts and records) of a task's direct PyAV path."""
  return task_info(name).rejects


@functools.lru_cache(maxsize=None)
def vocabulary(path: str) -> seqio.SentencePieceVocabulary:
  """The seqio SentencePiece vocabulary of a model file (demo, Gemma or PaliGemma)."""
  if not pathlib.Path(path).is_file():
    raise FileNotFoundError(f"SentencePiece model not found: {path}")
  return seqio.SentencePieceVocabulary(str(path))


def output_features(vocab: seqio.Vocabulary) -> dict[str, seqio.Feature]:
  """frames (uint8 rank 4, passed through), prefix and suffix (int32 tokens, no EOS)."""
  return {
      "frames": seqio.Feature(seqio.PassThroughVocabulary(size=0), add_eos=False,
                              dtype=tf.uint8, rank=4),
      "prefix": seqio.Feature(vocab, add_eos=False),
      "suffix": seqio.Feature(vocab, add_eos=False),
  }


class EvalFeatureConverter(seqio.PassThroughFeatureConverter):
  """The feature converter for `seqio.Evaluator` over these tasks: the examples go to the
  predict_fn as the task made them (frames, prefix, suffix and the metadata the metrics read)."""
  _SPEC = seqio.FeatureConverter.FeatureSpec
  TASK_FEATURES = {"frames": _SPEC(dtype=tf.uint8, rank=4), "prefix": _SPEC(dtype=tf.int32),
                   "suffix": _SPEC(dtype=tf.int32)}
  MODEL_FEATURES = TASK_FEATURES
  _pack = False  # The evaluator refuses packing; PassThroughFeatureConverter leaves it unset.


def evaluator(task: str, split: str, num_examples: int = 0, *,
              use_memory_cache: bool = True) -> seqio.Evaluator:
  """`seqio.Evaluator` over the first `num_examples` (0 = all) of a registered task's split.

  `evaluate(predict_fn=...)` scores generated `suffix` text, `evaluate(score_fn=...)` per-example
  scores (retrieval and zero-shot tasks), with the task's postprocess_fn and metric_fns,
  synchronously (callers run the model on the accelerator). With `use_memory_cache` the decoded
  examples are kept in host memory after the Evaluator's first pass over them; without it every
  pass (the Evaluator's measuring pass, then the model's) decodes the clips again: for sets whose
  frames do not fit in host memory.
  """
  return seqio.Evaluator(task, EvalFeatureConverter(), eval_split=split,
                         num_examples=num_examples or None, target_field_name="suffix",
                         async_compute_metrics=False, use_memory_cache=use_memory_cache)


# ----------------------------------------------------------------------------------------------
# Sources.


class PyAVSource(seqio.FunctionDataSource):
  """The PyAV source of a task: a seqio source that shards before decoding, with random access.

  `get_dataset(shard_info=...)` keeps the items i with i % num_shards == index of the (shuffled)
  item list before any clip is decoded, so a process of a multi-host harness decodes only its
  share; `indexed(split, name)` gives the split's items by index (data.indexed, the trainers'
  `data.process_split=indexed` input).
  """

  def __init__(self, dataset_fn: Callable[..., tf.data.Dataset], splits: Sequence[str],
               items_fn: ItemsFn, sampling: Mapping[str, Sampling], rejects: Rejects,
               output_signature: Mapping[str, tf.TensorSpec]):
    super().__init__(dataset_fn, splits=list(splits), caching_permitted=False)
    self.output_signature = output_signature  # of one raw example
    self._items_fn = items_fn
    self._sampling = dict(sampling)
    self._rejects = rejects

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: int | None = None,
                  shard_info: seqio.ShardInfo | None = None, *,
                  sequence_length: Mapping[str, int] | None = None, use_cached: bool = False,
                  num_epochs: int | None = 1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs  # As seqio.FunctionDataSource.
    shard = (0, 1) if shard_info is None else (shard_info.index, shard_info.num_shards)
    return self._dataset_fn(split=split, shuffle_files=shuffle, seed=seed, shard=shard)

  def items(self, split: str, rejects: Rejects | None = None) -> Iterable[ClipItem]:
    """The split's ClipItems in list order (the order `indexed` numbers them); bad rows are
    counted in `rejects` (default: the source's). Prepared shards (data.prepared) are built
    from it."""
    if split not in self._sampling:
      raise ValueError(f"no split {split!r} (splits: {self.splits})")
    return self._items_fn(split, self._rejects if rejects is None else rejects)

  def sampling(self, split: str) -> Sampling:
    """The split's frame sampling (mode "random" for training splits)."""
    if split not in self._sampling:
      raise ValueError(f"no split {split!r} (splits: {self.splits})")
    return self._sampling[split]

  def indexed(self, split: str, name: str) -> indexed_lib.IndexedItems:
    """The split's items by index, decoded with its sampling (items listed once, on first use)."""
    if split not in self._sampling:
      raise ValueError(f"{name}: no split {split!r} (splits: {self.splits})")
    return indexed_lib.IndexedItems(name, lambda: self._items_fn(split, self._rejects),
                                    self._sampling[split], self._rejects)


def pyav_source(items_fn: ItemsFn, splits: Sequence[str], features: tfds.features.FeaturesDict,
                *, sampling: Mapping[str, Sampling], rejects: Rejects, decode_workers: int = 1,
                cache_decoded: bool = False) -> PyAVSource:
  """A seqio source that decodes each item's media with PyAV in a tf.data generator.

  Args:
    items_fn: (split, rejects) -> ClipItems (bad rows counted in rejects by the readers).
    splits: split names.
    features: the raw example's TFDS features; its tensor spec is the generator's signature, so
      the examples equal those read back from prepared TFDS shards.
    sampling: split -> frame sampling (mode "random" draws windows from a numpy Generator
      seeded by the dataset seed; no seed: fresh entropy).
    rejects: where undecodable clips (and the readers' bad rows) are counted.
    decode_workers: parallel decoding generators (items are dealt round-robin; the output order
      is deterministic).
    cache_decoded: keep a split's decoded examples in memory after its first pass, so a repeated
      (training) stream decodes each clip once. Only for data that fits in host memory (the
      demo world); every pass already replays the same seeded order and temporal windows, so
      caching changes no example. Rejects are counted on the first pass only.

  With shuffle_files=True the item list is shuffled (seeded) before decoding, so a training
  stream is shuffled without a large buffer of decoded frames. A shard (index, count) keeps every
  count-th item of that list from index on, before decoding.
  """
  signature = features.get_tensor_spec()
  missing = [s for s in splits if s not in sampling]
  if missing:
    raise ValueError(f"no sampling for splits {missing}")

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None,
                 shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    entropy = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**63))
    index, count = shard

    def generate(worker: int):
      worker = int(worker)
      items: Iterable[ClipItem] = items_fn(split, rejects)
      if shuffle_files:
        items = list(items)
        np.random.default_rng([entropy, 0]).shuffle(items)
      if count > 1:
        items = itertools.islice(items, index, None, count)
      rng = np.random.default_rng([entropy, 1, worker] if count == 1
                                  else [entropy, 1, worker, index, count])
      for item in itertools.islice(items, worker, None, decode_workers):
        example = tb.decode_item(item, sampling[split], rng, rejects)
        if example is not None:
          yield example

    def one(worker: tf.Tensor) -> tf.data.Dataset:
      return tf.data.Dataset.from_generator(generate, args=(worker,), output_signature=signature)

    if decode_workers == 1:
      ds = one(tf.constant(0, tf.int64))
    else:
      ds = tf.data.Dataset.range(decode_workers).interleave(
          one, cycle_length=decode_workers, block_length=1, num_parallel_calls=decode_workers,
          deterministic=True)
    return ds.cache() if cache_decoded else ds

  return PyAVSource(dataset_fn, splits, items_fn, sampling, rejects, signature)


def tfds_source(dataset: str, tfds_data_dir: str | pathlib.Path, config: tb.VideoConfig,
                split_map: Mapping[str, str]) -> seqio.TfdsDataSource:
  """A seqio source over prepared TFDS shards (read-only; raises when not prepared)."""
  directory = tb.prepared_dir(dataset, tfds_data_dir, config)
  if not (directory / "dataset_info.json").is_file():
    raise FileNotFoundError(
        f"{dataset}: no prepared TFDS data at {directory}; run python -m data.tfds_builders "
        f"--dataset={dataset} --manual_dir=<root> --data_dir={tfds_data_dir} "
        f"--num_frames={config.num_frames} --fps={config.fps} --res={config.res}")
  return seqio.TfdsDataSource(tfds_name=None, tfds_data_dir=str(directory),
                              splits=dict(split_map), read_only=True)


# ----------------------------------------------------------------------------------------------
# Registration.


def _register(info: TaskInfo, source: seqio.DataSource, preprocessors: Sequence[Callable[..., Any]],
              vocab: seqio.Vocabulary, shuffle_buffer_size: int,
              evaluation: Evaluation | None = None) -> str:
  seqio.TaskRegistry.remove(info.name)
  seqio.TaskRegistry.add(
      info.name, source=source,
      preprocessors=[*preprocessors,
                     functools.partial(pp.check_frames, num_frames=info.num_frames,
                                       res=info.res),
                     pp.tokenize_text],
      output_features=output_features(vocab), shuffle_buffer_size=shuffle_buffer_size,
      postprocess_fn=evaluation.postprocess_fn if evaluation else None,
      metric_fns=list(evaluation.metric_fns) if evaluation else None)
  _INFO[info.name] = info
  return info.name


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """How seqio's Evaluator scores a task: predictions are generated `suffix` text
  (target_field_name="suffix"), postprocessed, then given to the metric functions with the
  postprocessed targets (viit_jax.metrics.task_fns)."""
  postprocess_fn: Callable[..., Any]
  metric_fns: tuple[Callable[..., Mapping[str, float]], ...]


CAPTION_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")  # MSR-VTT's usual set (CIDEr-D).


def caption_evaluation(metrics: Sequence[str] = CAPTION_METRICS) -> Evaluation:
  """Caption tasks: pycocoevalcap's scorers against every reference."""
  return Evaluation(task_fns.caption_postprocess,
                    (functools.partial(task_fns.caption_metrics, metrics=tuple(metrics)),))


NEXTQA_EVALUATION = Evaluation(task_fns.qa_postprocess, (task_fns.wups_metrics,))
# MSR-VTT-QA and ActivityNet-QA: exact match.
QA_ACCURACY_EVALUATION = Evaluation(task_fns.qa_postprocess, (task_fns.qa_accuracy_metrics,))


def retrieval_evaluation(tie_policy: str = "expected") -> Evaluation:
  """Retrieval tasks: per-example embeddings (the score_fn's) ranked in both directions."""
  return Evaluation(task_fns.retrieval_postprocess,
                    (functools.partial(task_fns.retrieval_metrics, tie_policy=tie_policy),))


def zero_shot_evaluation(tie_policy: str = "expected") -> Evaluation:
  """Zero-shot classification: per-example class similarities (the score_fn's)."""
  return Evaluation(task_fns.zero_shot_postprocess,
                    (functools.partial(task_fns.zero_shot_metrics, tie_policy=tie_policy),))


def register_viit_mixture(name: str, task_rates: list[tuple[str, float]]) -> seqio.Mixture:
  """Registers (or replaces) the VIIT mixture: [(task name, rate), ...] of registered tasks.

  Phase 2 trains on it: VidLN reasoning QA + S-MiT captions + VidLN short QA in the paper.
  """
  if not task_rates:
    raise ValueError("task_rates is empty")
  for task, rate in task_rates:
    if task not in seqio.TaskRegistry.names():
      raise KeyError(f"mixture {name!r}: task {task!r} is not registered")
    if rate <= 0:
      raise ValueError(f"mixture {name!r}: rate of {task!r} must be > 0, got {rate}")
  seqio.MixtureRegistry.remove(name)
  return seqio.MixtureRegistry.add(name, [(t, float(r)) for t, r in task_rates])


@dataclasses.dataclass(frozen=True)
class VideoText:
  """One example of a generic video+text task (e.g. a synthesized instruction).

  Attributes:
    key: unique id within its split.
    path: the video file.
    prefix: prompt text; suffix: target text.
    meta: extra string fields passed through (same keys for every item of a task).
    segment: optional (start_s, end_s) to cut from the file.
  """
  key: str
  path: pathlib.Path
  prefix: str
  suffix: str
  meta: Mapping[str, str] = dataclasses.field(default_factory=dict)
  segment: tuple[float, float] | None = None


def register_video_text_task(name: str, items: Mapping[str, Callable[[], Iterable[VideoText]]],
                             *, vocab_path: str | pathlib.Path, num_frames: int, fps: float,
                             res: int, train_splits: Sequence[str] = ("train",),
                             meta_keys: Sequence[str] = (), rejects_path: str | None = None,
                             decode_workers: int = 1, shuffle_buffer_size: int = 64,
                             cache_decoded: bool = False) -> str:
  """Registers a task of (video, prefix text, suffix text) items decoded with PyAV.

  Args:
    name: task name.
    items: split -> a callable returning that split's VideoText items (called per pass).
    vocab_path: SentencePiece model.
    num_frames, fps, res: frame sampling; `train_splits` use a random window, others uniform.
    meta_keys: the keys of VideoText.meta, passed through as string features.
    rejects_path: optional JSONL for undecodable clips.
    decode_workers, shuffle_buffer_size, cache_decoded: as register_demo_tasks.
  Returns the task name; examples carry key, prefix, suffix, frames and the meta keys.
  """
  rejects = Rejects(name, rejects_path)
  features = tfds.features.FeaturesDict({
      "key": tfds.features.Text(), "prefix": tfds.features.Text(),
      "suffix": tfds.features.Text(), **{k: tfds.features.Text() for k in meta_keys},
      "frames": tfds.features.Video(shape=(num_frames, res, res, 3))})

  def items_fn(split: str, rejects: Rejects) -> Iterable[ClipItem]:
    del rejects  # the caller's items are already parsed
    for it in items[split]():
      meta = {k: it.meta[k] for k in meta_keys}
      yield ClipItem(it.key, pathlib.Path(it.path),
                     {"key": it.key, "prefix": it.prefix, "suffix": it.suffix, **meta},
                     segment=it.segment)

  sampling = {s: Sampling(num_frames, fps, res, "random" if s in train_splits else "uniform")
              for s in items}
  source = pyav_source(items_fn, list(items), features, sampling=sampling, rejects=rejects,
                       decode_workers=decode_workers, cache_decoded=cache_decoded)
  info = TaskInfo(name=name, dataset="video_text", root=None, splits=tuple(items),
                  backend="pyav", rejects=rejects, num_frames=num_frames, fps=fps, res=res)
  return _register(info, source, [], vocabulary(str(vocab_path)), shuffle_buffer_size)


@dataclasses.dataclass(frozen=True)
class _Formats:
  """Layout options of the real formats that differ between releases (see data.readers)."""
  webvid_csv: str
  webvid_path_template: str
  internvid_jsonl: str
  internvid_path_template: str
  internvid_full_videos: bool
  coco_annotation_template: str
  coco_image_dir: str


def _register_sets(data_dirs: Mapping[str, str | pathlib.Path], names: Mapping[str, str], *,
                   num_frames: int, fps: float, res: int, vocab: seqio.Vocabulary,
                   tfds_data_dir: str | pathlib.Path | None, rejects_dir: str | pathlib.Path | None,
                   formats: _Formats, decode_workers: int, shuffle_buffer_size: int,
                   cache_decoded: bool, caption_metrics: Sequence[str],
                   tie_policy: str) -> list[str]:
  unknown = sorted(set(data_dirs) - set(REAL_DATA_SETS))
  if unknown:
    raise ValueError(f"unknown data sets {unknown}; known: {list(REAL_DATA_SETS)}")
  roots = {k: pathlib.Path(v) for k, v in data_dirs.items()}
  for k, root in roots.items():
    if not root.is_dir():
      raise FileNotFoundError(f"{k}: data directory {root} does not exist")
  registered: list[str] = []

  def uniform(splits: Iterable[str]) -> dict[str, Sampling]:
    return {s: Sampling(num_frames, fps, res, "uniform") for s in splits}

  def add(role: str, dataset: str, splits: Sequence[str], items_fn: ItemsFn,
          features: tfds.features.FeaturesDict, preprocessors: Sequence[Callable[..., Any]],
          sampling: Mapping[str, Sampling], tfds_splits: Mapping[str, str] | None,
          labels: Mapping[str, tuple[str, ...]] | None = None,
          evaluation: Evaluation | None = None) -> None:
    name = names[role]
    if not splits:
      raise FileNotFoundError(f"{name}: no split's annotation file under {roots[dataset]}")
    rejects = Rejects(name, None if rejects_dir is None else pathlib.Path(rejects_dir)
                      / f"{name}.jsonl")
    if tfds_data_dir is not None and tfds_splits is not None:
      cfg = tb.make_config(num_frames, fps, res)  # the prepared dir depends on T, fps, res only
      source, backend = tfds_source(dataset, tfds_data_dir, cfg, tfds_splits), "tfds"
    else:
      source = pyav_source(items_fn, splits, features, sampling=sampling, rejects=rejects,
                           decode_workers=decode_workers, cache_decoded=cache_decoded)
      backend = "pyav"
    info = TaskInfo(name=name, dataset=dataset, root=roots[dataset], splits=tuple(splits),
                    backend=backend, rejects=rejects,
                    num_frames=1 if dataset == "coco" else num_frames, fps=fps, res=res,
                    labels=labels or {})
    registered.append(_register(info, source, preprocessors, vocab, shuffle_buffer_size,
                                evaluation))

  def add_captions(role: str, dataset: str, splits: Sequence[str], items_fn: ItemsFn,
                   tfds_splits: Mapping[str, str] | None, evaluation: Evaluation) -> None:
    """Clips with a caption list (MSR-VTT's layout): the first caption is the target."""
    add(role, dataset, splits, items_fn, tb.msrvtt_features(num_frames, res),
        [functools.partial(pp.caption_from_list, key="captions", pick="first")],
        uniform(splits), tfds_splits, evaluation=evaluation)

  def add_open_qa(role: str, dataset: str, splits: Sequence[str], items_fn: ItemsFn,
                  tfds_splits: Mapping[str, str] | None, evaluation: Evaluation) -> None:
    """Videos with their questions (NExT-QA's layout): one example per question."""
    add(role, dataset, splits, items_fn, tb.nextqa_features(num_frames, res),
        [pp.flatten_nextqa, pp.qa_prompt], uniform(splits), tfds_splits, evaluation=evaluation)

  if "coco" in roots:
    root = roots["coco"]
    splits = tb.coco_splits(root, formats.coco_annotation_template)
    add("coco_caption", "coco", splits,
        lambda split, rej, root=root: tb.coco_items(
            root, split, rej, annotation_template=formats.coco_annotation_template,
            image_dir=formats.coco_image_dir),
        tb.coco_features(1, res), [functools.partial(pp.flatten_captions, key="captions")],
        {s: Sampling(1, fps, res, "uniform") for s in splits}, None)
  if "smit" in roots:
    root = roots["smit"]
    splits = tb.smit_splits(root)
    add("smit_caption", "smit", splits, lambda split, rej, root=root: tb.smit_items(root, split,
                                                                                      rej),
        tb.smit_features(num_frames, res), [functools.partial(pp.caption_from_text,
                                                                key="caption")],
        {s: Sampling(num_frames, fps, res, "random" if s == "train" else "uniform")
         for s in splits}, {s: s for s in splits}, evaluation=caption_evaluation(("CIDEr",)))
  if "webvid" in roots:
    root = roots["webvid"]
    splits = ["train"] if (root / formats.webvid_csv).is_file() else []
    add("webvid_pool", "webvid", splits,
        lambda split, rej, root=root: tb.webvid_items(
            root, formats.webvid_csv, rej, path_template=formats.webvid_path_template),
        tb.pool_features(num_frames, res), [functools.partial(pp.caption_from_text,
                                                                key="alt_text")],
        uniform(splits), {"train": "train"})
  if "internvid" in roots:
    root = roots["internvid"]
    splits = ["train"] if (root / formats.internvid_jsonl).is_file() else []
    add("internvid_pool", "internvid", splits,
        lambda split, rej, root=root: tb.internvid_items(
            root, formats.internvid_jsonl, rej, path_template=formats.internvid_path_template,
            full_videos=formats.internvid_full_videos),
        tb.pool_features(num_frames, res), [functools.partial(pp.caption_from_text,
                                                                key="alt_text")],
        uniform(splits), {"train": "train"})
  if "msrvtt" in roots:
    root = roots["msrvtt"]
    all_splits = tb.msrvtt_splits(root)
    caption_splits = [s for s in all_splits if s != "test_1ka"]
    add_captions("msrvtt_caption", "msrvtt", caption_splits,
                 lambda split, rej, root=root: tb.msrvtt_items(root, split, rej),
                 {s: s for s in caption_splits}, caption_evaluation(caption_metrics))
    add("msrvtt_full_retrieval", "msrvtt", caption_splits,
        lambda split, rej, root=root: tb.msrvtt_items(root, split, rej),
        tb.msrvtt_features(num_frames, res), [pp.retrieval_text], uniform(caption_splits),
        {s: s for s in caption_splits}, evaluation=retrieval_evaluation(tie_policy))
    qa_splits = tb.msrvtt_qa_splits(root)
    if qa_splits:
      add_open_qa("msrvtt_qa", "msrvtt", qa_splits,
                  lambda split, rej, root=root: tb.msrvtt_qa_items(root, split, rej), None,
                  QA_ACCURACY_EVALUATION)
    if "test_1ka" in all_splits:
      add("msrvtt_retrieval", "msrvtt", ["test"],
          lambda split, rej, root=root: tb.msrvtt_items(root, "test_1ka", rej),
          tb.msrvtt_features(num_frames, res), [pp.retrieval_text], uniform(["test"]),
          {"test": "test_1ka"}, evaluation=retrieval_evaluation(tie_policy))
  if "nextqa" in roots:
    root = roots["nextqa"]
    splits = tb.nextqa_splits(root)
    add_open_qa("nextqa_oe", "nextqa", splits,
                lambda split, rej, root=root: tb.nextqa_items(root, split, rej),
                {s: s for s in splits}, NEXTQA_EVALUATION)
  if "activitynet" in roots:  # PyAV only (no TFDS builder).
    root = roots["activitynet"]
    splits = tb.anet_caption_splits(root)
    if splits:
      add_captions("anet_caption", "activitynet", splits,
                   lambda split, rej, root=root: tb.anet_caption_items(root, split, rej), None,
                   caption_evaluation(("CIDEr",)))
    qa_splits = tb.anet_qa_splits(root)
    if qa_splits:
      add_open_qa("anet_qa", "activitynet", qa_splits,
                  lambda split, rej, root=root: tb.anet_qa_items(root, split, rej), None,
                  QA_ACCURACY_EVALUATION)
    if not splits and not qa_splits:
      raise FileNotFoundError(f"activitynet: no <split>.json or <split>_q.json under {root}")
  if "vatex" in roots:  # PyAV only (no TFDS builder).
    root = roots["vatex"]
    splits = readers.vatex_splits(root)
    add("vatex_retrieval", "vatex", splits,
        lambda split, rej, root=root: tb.vatex_items(root, split, rej),
        tb.msrvtt_features(num_frames, res), [pp.retrieval_text], uniform(splits), None,
        evaluation=retrieval_evaluation(tie_policy))
  if "kinetics" in roots:
    root = roots["kinetics"]
    splits = tb.kinetics_splits(root)
    add("kinetics", "kinetics", splits,
        lambda split, rej, root=root: tb.kinetics_items(root, split, rej),
        tb.kinetics_features(num_frames, res),
        [functools.partial(pp.caption_from_text, key="label")], uniform(splits),
        {s: s for s in splits}, labels={s: tuple(tb.kinetics_labels(root, s)) for s in splits},
        evaluation=zero_shot_evaluation(tie_policy))
  return registered


def register_demo_tasks(world_dir: str | pathlib.Path, *, num_frames: int = 8, fps: float = 2.0,
                        res: int = 32, vocab_path: str | pathlib.Path | None = None,
                        rejects_dir: str | pathlib.Path | None = None, decode_workers: int = 1,
                        shuffle_buffer_size: int = 64, cache_decoded: bool = False,
                        caption_metrics: Sequence[str] = CAPTION_METRICS,
                        tie_policy: str = "expected") -> list[str]:
  """Registers the demo world's tasks (direct PyAV path); returns their names.

  Args:
    world_dir: output of `python -m data.demo_world`.
    num_frames, fps, res: frame sampling (stills are always 1 frame).
    vocab_path: SentencePiece model (default: <world_dir>/spm/demo.model).
    rejects_dir: optional directory for per-task rejects JSONL files.
    decode_workers: parallel PyAV decoders per task.
    shuffle_buffer_size: seqio shuffle buffer (examples hold decoded frames: keep it small).
    cache_decoded: keep decoded clips in memory after a split's first pass (small data only; see
      pyav_source).
    caption_metrics: the caption task's seqio metric (viit_jax.metrics.captioning.METRICS names).
    tie_policy: retrieval and zero-shot ties (viit_jax.metrics.retrieval).
  The ActivityNet and VATEX layouts are registered when the world has them (worlds made before
  they existed do not).
  """
  world = pathlib.Path(world_dir)
  vocab = vocabulary(str(vocab_path if vocab_path is not None else world / "spm" / "demo.model"))
  dirs = {"coco": world / "stills", "smit": world / "smit", "webvid": world / "webvid",
          "msrvtt": world / "msrvtt", "nextqa": world / "nextqa", "kinetics": world / "kinetics"}
  dirs.update({k: world / k for k in ("activitynet", "vatex") if (world / k).is_dir()})
  formats = _Formats(webvid_csv="results_pool.csv", webvid_path_template="{contentUrl}",
                     internvid_jsonl="", internvid_path_template="", internvid_full_videos=True,
                     coco_annotation_template="captions_{split}.json", coco_image_dir="images")
  return _register_sets(dirs, DEMO_TASK_NAMES, num_frames=num_frames, fps=fps, res=res,
                        vocab=vocab, tfds_data_dir=None, rejects_dir=rejects_dir,
                        formats=formats, decode_workers=decode_workers,
                        shuffle_buffer_size=shuffle_buffer_size, cache_decoded=cache_decoded,
                        caption_metrics=caption_metrics, tie_policy=tie_policy)


def register_real_tasks(data_dirs: Mapping[str, str | pathlib.Path], *, num_frames: int,
                        fps: float, res: int, vocab_path: str | pathlib.Path,
                        tfds_data_dir: str | pathlib.Path | None = None, name_prefix: str = "",
                        rejects_dir: str | pathlib.Path | None = None,
                        webvid_csv: str = "results_2M_train.csv",
                        webvid_path_template: str = "videos/{page_dir}/{videoid}.mp4",
                        internvid_jsonl: str = "InternVid-10M-FLT.jsonl",
                        internvid_path_template: str = "videos/{YoutubeID}.mp4",
                        internvid_full_videos: bool = True,
                        coco_annotation_template: str = "annotations/captions_{split}2017.json",
                        coco_image_dir: str = "{split}2017", decode_workers: int = 1,
                        shuffle_buffer_size: int = 64, cache_decoded: bool = False,
                        caption_metrics: Sequence[str] = CAPTION_METRICS,
                        tie_policy: str = "expected") -> list[str]:
  """Registers tasks of the real data sets; returns their names.

  Args:
    data_dirs: data set -> root in its public format, keys among msrvtt, nextqa, activitynet
      (Captions and QA files in one root), vatex, webvid, internvid, smit, kinetics, coco.
    num_frames, fps, res: frame sampling (must match the prepared TFDS config when read).
    vocab_path: SentencePiece model (Gemma/PaliGemma's, or the demo's).
    tfds_data_dir: None: decode mp4 with PyAV on the fly. Else read the data sets that have a
      TFDS builder (all but coco, MSR-VTT-QA, ActivityNet and VATEX) from shards prepared there by
      `python -m data.tfds_builders` (a clear error when missing).
    name_prefix: prepended to the task names (msrvtt_caption, msrvtt_retrieval,
      msrvtt_full_retrieval, msrvtt_qa
      (when <msrvtt>/MSRVTT-QA/<split>_qa.json exist), nextqa_oe, anet_caption, anet_qa,
      vatex_retrieval,
      webvid_pool, internvid_pool, smit_caption, kinetics, coco_caption).
    rejects_dir: optional directory for per-task rejects JSONL files.
    webvid_csv, webvid_path_template, internvid_jsonl, internvid_path_template,
    internvid_full_videos, coco_annotation_template, coco_image_dir: layout of those releases
      (see data.readers).
    decode_workers, shuffle_buffer_size, cache_decoded, caption_metrics, tie_policy: as
      register_demo_tasks.
  """
  names = {role: name_prefix + role for role in (
      "coco_caption", "smit_caption", "webvid_pool", "internvid_pool", "msrvtt_caption",
      "msrvtt_retrieval", "msrvtt_full_retrieval", "msrvtt_qa", "nextqa_oe", "anet_caption",
      "anet_qa", "vatex_retrieval", "kinetics")}
  formats = _Formats(webvid_csv=webvid_csv, webvid_path_template=webvid_path_template,
                     internvid_jsonl=internvid_jsonl,
                     internvid_path_template=internvid_path_template,
                     internvid_full_videos=internvid_full_videos,
                     coco_annotation_template=coco_annotation_template,
                     coco_image_dir=coco_image_dir)
  return _register_sets(data_dirs, names, num_frames=num_frames, fps=fps, res=res,
                        vocab=vocabulary(str(vocab_path)), tfds_data_dir=tfds_data_dir,
                        rejects_dir=rejects_dir, formats=formats, decode_workers=decode_workers,
                        shuffle_buffer_size=shuffle_buffer_size, cache_decoded=cache_decoded,
                        caption_metrics=caption_metrics, tie_policy=tie_policy)
