"""Phase 5: zero-shot evaluation of a VLM or dual-encoder checkpoint on seqio tasks.

  python -m viit_jax.evaluate --config=configs/evaluate_demo.py:<key=value,...> --workdir=DIR

Reads top to bottom: config -> the checkpoint's step and meta (its training config) -> frames,
resolution, tokenizer (the config's, else the checkpoint's) -> seqio tasks -> model + parameters
restored straight into their shardings on this process's mesh -> each evaluation task ->
`metrics.json`, `metrics.md`, `predictions/<task>.jsonl` in the workdir (process 0 writes).

Tasks (`eval.tasks`, '+'-joined; '' = every task of the kind whose data set is registered).
Each is a seqio Task with its postprocess_fn and metric_fns (viit_jax.metrics.task_fns), run by
`seqio.Evaluator`; this module supplies the model side:
  kind=vlm: the predict_fn, greedy decoding (viit_jax.decoding, cached) of [BOS + prompt + "\\n"]:
    msrvtt_caption     prompt "Generate the alt-text:"; CIDEr (pycocoevalcap's Cider = CIDEr-D),
                       BLEU-4, METEOR, ROUGE-L after the PTB tokenizer, against all references.
    anet_caption       ActivityNet Captions, one caption per ground-truth segment (frames from
                       the segment): CIDEr against its sentence.
    msrvtt_qa, anet_qa prompt "Answer in en: <question>"; accuracy: exact match after
                       viit_jax.metrics.qa's normalisation, overall and per question word / type
                       (MSR-VTT-QA <msrvtt>/MSRVTT-QA/<split>_qa.json, ActivityNet-QA
                       <activitynet>/<split>_{q,a}.json; the demo world writes both).
    smit_caption       S-MiT's spoken caption per clip (the paper's ablation metric): CIDEr.
    nextqa_oe          prompt "Answer in en: <question>"; WUPS@0 and WUPS@0.9 overall, per type
                       and per group (viit_jax.metrics.wups: official NExT-OE algorithm, WordNet
                       3.0; its documented deviation: lemmas without a POS tagger). Trailing
                       punctuation of a prediction is stripped first (the official code would
                       keep "left." as a token "left." outside WordNet).
  kind=dual_encoder: the score_fn (`DualEncoderScorer`), embeddings in batches sharded over the
  mesh (`embed.Embedder`):
    msrvtt_retrieval   text->video and video->text R@1/5/10, MedR, MeanR over the 1k-A pairs;
    msrvtt_full_retrieval  the same over every sentence of the split's clips (MSR-VTT's "full"
                       protocol: ~20 queries per clip on real MSR-VTT, 6-10 on the demo's);
    vatex_retrieval    the same over VATEX clips, each English caption a query. Videos are
                       de-duplicated by video_id; ties per `eval.tie_policy` (expected by
                       default: the expectation over random tie-breaking), with the optimistic
                       and pessimistic values beside it.
    kinetics_zero_shot top-1 / top-5: class embedding = normalised mean of the normalised text
                       embeddings of every template filled with the class name.
Video frames: the task's centred window of num_frames at fps (data/video.py), the checkpoint's
frames/fps/res unless `data.*` sets them (an image model evaluated on 8 frames: data.num_frames=8;
the VLM has no temporal parameter, ViT-st's PE_t fixes its frame count).
Multi-process: process p runs the model on examples i % P == p on its own devices (decoding or
embedding), the outputs are gathered once and every process computes the metrics, which equal a
1-process run's. Every process still reads (decodes the frames of) every example: seqio's
Evaluator caches the whole split on each process. Process 0 writes.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import seqio

from data import preprocessors as pp
from data import readers
from data import registry
from data import tasks as tasks_lib
from viit_jax import config_lib
from viit_jax import decoding
from viit_jax import embed
from viit_jax import paths
from viit_jax import runtime
from viit_jax.metrics import classification
from viit_jax.metrics import retrieval
from viit_jax.metrics import wups
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import vlm as vlm_lib

KINDS = ("vlm", "dual_encoder")
TASKS = {"vlm": ("msrvtt_caption", "msrvtt_qa", "anet_caption", "anet_qa", "nextqa_oe",
                 "smit_caption"),
         "dual_encoder": ("msrvtt_retrieval", "msrvtt_full_retrieval", "vatex_retrieval",
                          "kinetics_zero_shot")}
# Evaluation task -> the data task role it reads (data.tasks names; demo_<...> on the demo world).
DATA_ROLES = {**{n: n for n in (*TASKS["vlm"], *TASKS["dual_encoder"])},
              "kinetics_zero_shot": "kinetics"}
# Evaluation task -> the eval.<key> naming its split.
SPLIT_KEYS = {"msrvtt_caption": "caption_split", "msrvtt_qa": "qa_split",
              "anet_caption": "anet_caption_split", "anet_qa": "anet_qa_split",
              "nextqa_oe": "qa_split", "msrvtt_retrieval": "retrieval_split",
              "msrvtt_full_retrieval": "retrieval_split",
              "vatex_retrieval": "vatex_split", "kinetics_zero_shot": "kinetics_split",
              "smit_caption": "smit_split"}
QA_TASKS = ("msrvtt_qa", "anet_qa", "nextqa_oe")
RETRIEVAL_TASKS = ("msrvtt_retrieval", "msrvtt_full_retrieval", "vatex_retrieval")
NOTES = {
    "msrvtt_caption": "CIDEr is pycocoevalcap's Cider (CIDEr-D); PTB-tokenised; x100.",
    "nextqa_oe": "Official NExT-OE WUPS (WordNet 3.0, first synsets); lemmas without a POS "
                 "tagger; trailing punctuation of predictions stripped; x100.",
    "msrvtt_qa": "MSR-VTT-QA exact match (lower-case, punctuation -> space, no articles) against "
                 "the one answer; per question word; x100.",
    "anet_caption": "ActivityNet Captions, one caption per ground-truth segment against its "
                    "sentence; pycocoevalcap's Cider (CIDEr-D); x100.",
    "smit_caption": "S-MiT spoken captions (the paper's ablation metric), one per clip; "
                    "pycocoevalcap's Cider (CIDEr-D); x100.",
    "anet_qa": "ActivityNet-QA exact match (as MSR-VTT-QA) against the one answer; per answer "
               "type; x100.",
    "msrvtt_retrieval": "1k-A; R@K x100, MedR/MeanR 1-based; ties: {tie_policy} (the "
                        "optimistic and pessimistic rows bound it).",
    "msrvtt_full_retrieval": "every sentence of the split's clips a text query (the full "
                             "protocol); R@K x100, MedR/MeanR 1-based; ties: {tie_policy} (the "
                             "optimistic and pessimistic rows bound it).",
    "vatex_retrieval": "every English caption a text query; R@K x100, MedR/MeanR 1-based; ties: "
                       "{tie_policy} (the optimistic and pessimistic rows bound it).",
    "kinetics_zero_shot": "Prompt-template ensemble ({templates} templates); ties: {tie_policy} "
                          "(/optimistic, /pessimistic: its bounds).",
}
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"


# ------------------------------------------------------------------------------------------------
# Set-up: checkpoint, data, model.


def task_names(config: ml_collections.ConfigDict) -> list[str]:
  """The evaluation tasks of the config: eval.tasks, else every task of `kind` whose data set
  is registered (call after registering the data; an old demo world has no ActivityNet)."""
  if config.kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {config.kind!r}")
  names = [n.strip() for n in config.eval.tasks.replace(",", "+").split("+") if n.strip()]
  registered = set(seqio.TaskRegistry.names())
  if not names:
    return [n for n in TASKS[config.kind] if data_task(config, n) in registered]
  bad = [n for n in names if n not in TASKS[config.kind]]
  if bad:
    raise ValueError(f"eval.tasks {bad} are not tasks of kind={config.kind} "
                     f"(its tasks: {TASKS[config.kind]})")
  missing = [n for n in names if data_task(config, n) not in registered]
  if missing:
    raise ValueError(f"eval.tasks {missing}: their data sets are not registered (data.dirs "
                     "needs msrvtt / activitynet / vatex / nextqa / kinetics; a demo world made "
                     "before ActivityNet and VATEX existed needs regenerating)")
  return names


def _setting(config: ml_collections.ConfigDict, source: runtime.CheckpointSource, key: str):
  """data.<key> from the config, else from the checkpoint's training config; error if neither."""
  value = config.data[key] or source.trained("data", key)
  if not value:
    raise ValueError(f"data.{key} is not set and the checkpoint {source.path} records none")
  return value


def vocab_path(config: ml_collections.ConfigDict, source: runtime.CheckpointSource) -> str:
  """The config's tokenizer, else the checkpoint's, else the demo world's."""
  path = config.data.vocab_path or source.trained("data", "vocab_path") or ""
  if not path:
    if config.data.source != "demo":
      raise ValueError("data.vocab_path is required for data.source=real")
    path = registry.demo_vocab_path(config.data.world_dir)
  return path


def data_task(config: ml_collections.ConfigDict, name: str) -> str:
  role = DATA_ROLES[name]
  return tasks_lib.DEMO_TASK_NAMES[role] if config.data.source == "demo" else role


def _text(x: Any) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _texts(xs: Any) -> list[str]:
  return [t for t in (_text(x) for x in np.asarray(xs).reshape(-1)) if t]


# ------------------------------------------------------------------------------------------------
# VLM tasks.


class VLMEvaluator:
  """Greedy decoding of a VLM over a task's prompts, batched and sharded over the mesh."""

  def __init__(self, model_cfg: vlm_lib.VLMConfig, params: Any, vocab: seqio.Vocabulary,
               mesh: jax.sharding.Mesh, *, batch_size: int, prompt_len: int,
               max_decode_len: int, seed: int):
    sp = vocab.tokenizer
    self.vocab, self.params, self.seed = vocab, params, seed
    self.eos = int(sp.eos_id())
    cfg = decoding.DecodeConfig(sampler="greedy", max_decode_len=max_decode_len,
                                eos_id=self.eos, pad_id=0,
                                valid_vocab_size=min(int(vocab.vocab_size),
                                                     model_cfg.llm.vocab_size))
    self.decoder = decoding.Decoder(decoding.VLMAdapter(vlm_lib.VLM(model_cfg)), cfg, mesh)
    if batch_size % self.decoder.batch_divisor:
      raise ValueError(f"eval.batch_size {batch_size} is not a multiple of the mesh's "
                       f"{self.decoder.batch_divisor} batch devices")
    self.batch_size, self.prompt_len = batch_size, prompt_len
    self.max_decode_len = max_decode_len

  def predict(self, ds: Any, keep: Sequence[str]) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """(generated ids int32[max_decode_len], EOS included, 0 after it; kept fields of the
    example) for every example of `ds`, in order."""
    batches = pp.batch_for_model(ds, batch_size=self.batch_size, seq_len=self.prompt_len,
                                 vocab=self.vocab, keep=keep, include_suffix=False,
                                 drop_remainder=False)
    offset = 0
    for batch in pp.numpy_iterator(batches):
      n = batch["tokens"].shape[0]
      inputs = {k: batch[k] for k in ("frames", "tokens", "mask_input")}
      if n < self.batch_size:  # Pad the last batch with copies of its last row.
        inputs = {k: np.concatenate([v, np.repeat(v[-1:], self.batch_size - n, 0)])
                  for k, v in inputs.items()}
      ids = np.arange(offset, offset + self.batch_size, dtype=np.int32)
      out = self.decoder(self.params, inputs, ids, self.seed)
      for i in range(n):
        yield out.tokens[i, 0], {k: batch[k][i] for k in keep}
      offset += n

  def seqio_evaluate(self, task: str, split: str, max_examples: int,
                     row: Callable[[str, Mapping[str, Any]], dict[str, Any]], *,
                     memory_cache: bool = True
                     ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """`seqio.Evaluator` on `task`/`split` (its first `max_examples`; 0 = all) with this
    decoder as its predict_fn: the task's postprocess_fn and metric_fns score the generated
    text. Process p of P decodes the examples i with i % P == p on its own devices; the
    predictions are gathered once and every process scores all of them. Returns (metrics +
    "count", one `row(text, example)` per example, in order)."""
    rows: list[dict[str, Any]] = []
    procs, me = jax.process_count(), jax.process_index()
    keep = ("_index", *ROW_FIELDS[task_role(task)])

    def predict_fn(ds: Any, model_feature_shapes: Any = None) -> list[tuple[int, np.ndarray]]:
      del model_feature_shapes  # The pass-through converter keeps the task features.
      ds = ds.map(lambda i, ex: {**ex, "_index": i})
      mine = [(int(ex["_index"]), ids) for ids, ex in self.predict(
          ds.filter(lambda ex: ex["_index"] % procs == me), ("_index",))]
      # Equal lengths (EOS, then 0): seqio stacks them; its decode stops at EOS.
      out = dict(gather_rows(mine, (self.max_decode_len,)))
      for ex in pp.numpy_iterator(ds.map(lambda ex: {k: ex[k] for k in keep})):
        index = int(ex["_index"])
        rows.append(row(self.vocab.decode(decoding.strip(out[index], self.eos)), ex))
      return sorted(out.items())

    evaluator = tasks_lib.evaluator(task, split, max_examples, use_memory_cache=memory_cache)
    future, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict_fn)
    metrics = {k: float(v) for k, v in future.result()[task].items()}
    return {**metrics, "count": float(len(rows))}, rows


def gather_rows(mine: Sequence[tuple[int, np.ndarray]], shape: tuple[int, ...],
                dtype: Any = np.int32) -> list[tuple[int, np.ndarray]]:
  """Every process's (row index, array[shape]) on every process, in no particular order (the
  row counts, then one all-gather of the largest count of rows per process, padded with index
  -1)."""
  if jax.process_count() == 1:
    return list(mine)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  (per,) = global_max(len(mine))
  index = np.full((per,), -1, np.int32)
  values = np.zeros((per, *shape), dtype)
  for j, (i, v) in enumerate(mine):
    index[j], values[j] = i, v
  all_index = np.asarray(multihost_utils.process_allgather(index)).reshape(-1)
  all_values = np.asarray(multihost_utils.process_allgather(values)).reshape(-1, *shape)
  return [(int(i), v) for i, v in zip(all_index, all_values) if i >= 0]


def global_max(*values: int) -> tuple[int, ...]:
  """Each value's largest over processes (one all-gather)."""
  if jax.process_count() == 1:
    return tuple(int(v) for v in values)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  gathered = np.asarray(multihost_utils.process_allgather(np.asarray(values, np.int32)))
  return tuple(int(v) for v in gathered.reshape(-1, len(values)).max(axis=0))


# The example fields each kind of task keeps in its predictions file.
ROW_FIELDS = {"msrvtt_caption": ("video_id", "references"),
              "smit_caption": ("video_id", "references"),
              "anet_caption": ("key", "video_id", "references"),
              **{n: ("key", "type", "question", "answers") for n in QA_TASKS}}


def task_role(task: str) -> str:
  """The evaluation role of a data task name (demo_msrvtt_caption -> msrvtt_caption)."""
  for role, demo in tasks_lib.DEMO_TASK_NAMES.items():
    if task in (role, demo) and role in ROW_FIELDS:
      return role
  raise KeyError(f"{task!r} is not a VLM evaluation task ({list(ROW_FIELDS)})")


def caption_row(prediction: str, ex: Mapping[str, Any]) -> dict[str, Any]:
  key = {"key": _text(ex["key"])} if "key" in ex else {}
  return {**key, "video_id": _text(ex["video_id"]), "prediction": prediction,
          "references": _texts(ex["references"])}


def qa_row(prediction: str, ex: Mapping[str, Any]) -> dict[str, Any]:
  return {"key": _text(ex["key"]), "type": _text(ex["type"]), "question": _text(ex["question"]),
          "prediction": prediction, "answers": _texts(ex["answers"])}


# ------------------------------------------------------------------------------------------------
# Dual-encoder tasks.


class DualEncoderScorer:
  """The dual encoder as `seqio.Evaluator`'s score_fn (viit_jax.metrics.task_fns): the score of a
  retrieval example is its video's embedding followed by its captions' embeddings; of a
  zero-shot example, its video's similarity to every class embedding. Process p of P embeds the
  examples i with i % P == p, in batches sharded over its own devices; one gather shares the
  scores, and every process computes the metrics (equal to a 1-process run's)."""

  def __init__(self, embedder: embed.Embedder, params: Any, vocab: seqio.Vocabulary,
               text_len: int):
    self.embedder, self.params, self.vocab, self.text_len = embedder, params, vocab, text_len
    self.scores: dict[int, np.ndarray] = {}  # The last evaluation's, by example index.

  def embed_texts(self, texts: list[str]) -> np.ndarray:
    """float32[N, D] normalised text embeddings."""
    return self.embedder.texts(self.params, pp.text_tokens(self.vocab, texts, self.text_len))

  def _my_batches(self, ds: Any) -> Iterator[tuple[list[int], list[Mapping[str, Any]],
                                                   np.ndarray]]:
    """(example indices, examples, their video embeddings float32[n, D]) of this process's
    share of the enumerated dataset, a batch at a time."""
    procs, me = jax.process_count(), jax.process_index()
    batch: list[Mapping[str, Any]] = []

    def is_mine(i: Any, ex: Any) -> Any:
      del ex
      return i % procs == me

    def with_index(i: Any, ex: Any) -> Any:
      return {**ex, "_index": i}

    mine = ds.filter(is_mine).map(with_index)
    for ex in itertools.chain(pp.numpy_iterator(mine), [None]):
      if ex is not None:
        batch.append(ex)
      if batch and (ex is None or len(batch) == self.embedder.batch_size):
        videos = self.embedder.videos(self.params, np.stack([b["frames"] for b in batch]))
        yield [int(b["_index"]) for b in batch], batch, videos
        batch = []

  def _share(self, mine: list[tuple[int, np.ndarray]], shape: tuple[int, ...]
             ) -> list[tuple[int, np.ndarray]]:
    self.scores = dict(gather_rows(mine, shape, np.float32))
    return sorted(self.scores.items(), key=lambda kv: kv[0])

  def retrieval_scores(self, ds: Any, model_feature_shapes: Any = None
                       ) -> list[tuple[int, np.ndarray]]:
    """(index, float32[1 + K, D]) per example: video, then caption embeddings (NaN rows pad to
    the largest caption count K of the task)."""
    del model_feature_shapes
    mine: list[tuple[int, np.ndarray]] = []
    for indices, examples, videos in self._my_batches(ds):
      captions = [_texts(ex["captions"]) for ex in examples]
      texts = self.embed_texts([c for cs in captions for c in cs])
      offsets = np.cumsum([0] + [len(cs) for cs in captions])
      mine += [(i, np.concatenate([v[None], texts[a:b]]))
               for i, v, a, b in zip(indices, videos, offsets[:-1], offsets[1:])]
    rows, dim = global_max(max((len(m) for _, m in mine), default=0),
                           max((m.shape[1] for _, m in mine), default=0))
    return self._share([(i, np.pad(m, ((0, rows - len(m)), (0, 0)), constant_values=np.nan))
                        for i, m in mine], (rows, dim))

  def zero_shot_scores(self, class_emb: np.ndarray) -> Callable[..., list[tuple[int, np.ndarray]]]:
    """The score_fn of a zero-shot task: (index, float32[C] cosine similarity to each class)."""
    def score_fn(ds: Any, model_feature_shapes: Any = None) -> list[tuple[int, np.ndarray]]:
      del model_feature_shapes
      mine = [(i, s) for indices, _, videos in self._my_batches(ds)
              for i, s in zip(indices, videos @ class_emb.T)]
      return self._share(mine, (class_emb.shape[0],))
    return score_fn

  def seqio_evaluate(self, task: str, split: str, max_examples: int, *, memory_cache: bool,
                     class_emb: np.ndarray | None = None
                     ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """`seqio.Evaluator` on `task`/`split` with this scorer as its score_fn (retrieval, or
    zero-shot when `class_emb` float32[C, D] is given). Returns (metrics, prediction rows)."""
    evaluator = tasks_lib.evaluator(task, split, max_examples, use_memory_cache=memory_cache)
    score_fn = self.retrieval_scores if class_emb is None else self.zero_shot_scores(class_emb)
    future, _ = evaluator.evaluate(compute_metrics=True, score_fn=score_fn)
    metrics = {k: float(v) for k, v in future.result()[task].items()}
    ds = evaluator.cached_task_datasets[task]
    fields = ("video_id", "captions") if class_emb is None else ("clip_id", "label")
    rows: list[dict[str, Any]] = []
    labels = tasks_lib.task_info(task).labels.get(split, ())
    for i, ex in enumerate(pp.numpy_iterator(ds.map(lambda ex: {k: ex[k] for k in fields}))):
      if class_emb is None:
        rows += [{"text": t, "video_id": _text(ex["video_id"])} for t in _texts(ex["captions"])]
      else:
        rows.append({"clip_id": _text(ex["clip_id"]), "label": _text(ex["label"]),
                     "prediction": labels[int(np.argmax(self.scores[i]))]})
    return metrics, rows


# ------------------------------------------------------------------------------------------------
# Reports.


def _fmt(v: float) -> str:
  return f"{v:.2f}" if abs(v - round(v)) > 1e-9 else f"{int(round(v))}"


def markdown(report: Mapping[str, Any]) -> str:
  """The report as Markdown: a header, then one table per task (and its note)."""
  ck = report["checkpoint"]
  lines = [f"# Evaluation: {ck['experiment'] or ck['path']} (step {ck['step']})", "",
           f"- checkpoint: `{ck['path']}` step {ck['step']}, variant `{ck['variant']}`, "
           f"kind `{report['kind']}`",
           f"- frames: {report['frames']['num_frames']} at {report['frames']['fps']} fps, "
           f"{report['frames']['res']} px", f"- seconds: {report['seconds']:.1f}", ""]
  for name, t in report["tasks"].items():
    m = t["metrics"]
    lines += [f"## {name} (`{t['data_task']}`, split `{t['split']}`)", ""]
    if name in QA_TASKS:  # Rows: metric; columns: all, groups, types.
      present = {k.split("/", 1)[1] for k in m if "/" in k}
      order = (*wups.GROUPS, *wups.QUESTION_TYPES, *readers.MSRVTT_QA_TYPES,
               *readers.ANET_QA_TYPES)
      order = tuple(dict.fromkeys(order))  # "other" is in both QA sets' types.
      cols = ["all"] + [k for k in order if k in present]
      lines += ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
      for metric in [k for k in m if "/" not in k]:
        vals = [m[metric] if c == "all" else m.get(f"{metric}/{c}") for c in cols]
        lines.append(f"| {metric} | " + " | ".join("" if v is None else _fmt(v) for v in vals)
                     + " |")
    elif name in RETRIEVAL_TASKS:
      cols = ["R@1", "R@5", "R@10", "MedR", "MeanR"]
      lines += ["| direction | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
      for d in ("t2v", "v2t"):
        lines.append(f"| {d} | " + " | ".join(_fmt(m[f"{d}/{c}"]) for c in cols) + " |")
        for bound in ("optimistic", "pessimistic"):
          if f"{d}/R@1/{bound}" in m:
            lines.append(f"| {d} {bound} | "
                         + " | ".join(_fmt(m[f"{d}/{c}/{bound}"]) for c in cols) + " |")
      lines.append(f"\n{int(m['num_texts'])} texts, {int(m['num_videos'])} videos.")
    else:
      keys = list(m)
      lines += ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|",
                "| " + " | ".join(_fmt(m[k]) for k in keys) + " |"]
    lines += ["", f"_{t['note']}_", ""]
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Entry point.


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, log=print) -> dict[str, Any]:
  """Runs the configured tasks on the checkpoint; writes and returns the report."""
  started = time.time()
  if config.kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {config.kind!r}")
  source = runtime.checkpoint_source(config.checkpoint, config.checkpoint_step)
  num_frames = int(_setting(config, source, "num_frames"))
  fps = float(_setting(config, source, "fps"))
  res = int(_setting(config, source, "res"))
  text_len = int(_setting(config, source, "text_len"))
  vpath = vocab_path(config, source)
  registry.register_for_eval(config.data, num_frames=num_frames, fps=fps, res=res,
                             vocab_path=vpath, caption_metrics=tuple(config.eval.caption_metrics),
                             tie_policy=config.eval.tie_policy)
  names = task_names(config)
  vocab = tasks_lib.vocabulary(paths.local_copy(vpath))
  mesh = decoding.local_mesh(dict(config.mesh))
  batch = int(config.eval.batch_size)
  model_cfg = runtime.model_config(
      config.model, runtime.MODEL_KINDS[config.kind], num_frames=num_frames, res=res,
      text_len=text_len if config.kind == "dual_encoder" else 0, source=source)
  params = runtime.load_params(model_cfg, source, mesh)
  variant = config.model.variant or source.trained("model", "variant")
  log(f"evaluate {config.kind} {source.path} step {source.step} ({variant}): tasks {names}; "
      f"{num_frames} frames at {fps} fps, {res} px; mesh {dict(mesh.shape)}")

  tasks: dict[str, Any] = {}
  predictions: dict[str, list[dict[str, Any]]] = {}
  if config.kind == "vlm":
    evaluator = VLMEvaluator(model_cfg, params, vocab, mesh, batch_size=batch,
                             prompt_len=text_len, max_decode_len=int(config.eval.max_decode_len),
                             seed=int(config.eval.seed))
  else:
    scorer = DualEncoderScorer(embed.Embedder(de_lib.DualEncoder(model_cfg), mesh, batch),
                               params, vocab, text_len)
  templates = tuple(config.eval.zero_shot_templates) or classification.DEFAULT_TEMPLATES
  max_examples, cache = int(config.eval.max_examples), bool(config.eval.memory_cache)
  for name in names:
    t0 = time.time()
    task, split = data_task(config, name), config.eval[SPLIT_KEYS[name]]
    if name in ("msrvtt_caption", "anet_caption", "smit_caption"):
      metrics, rows = evaluator.seqio_evaluate(task, split, max_examples, caption_row,
                                               memory_cache=cache)
    elif name in QA_TASKS:
      metrics, rows = evaluator.seqio_evaluate(task, split, max_examples, qa_row,
                                               memory_cache=cache)
    elif name in RETRIEVAL_TASKS:
      metrics, rows = scorer.seqio_evaluate(task, split, max_examples, memory_cache=cache)
    else:
      labels = tasks_lib.task_info(task).labels.get(split)
      if not labels:
        raise ValueError(f"{task} has no class names for split {split}")
      class_emb = classification.class_embeddings(scorer.embed_texts, list(labels), templates)
      metrics, rows = scorer.seqio_evaluate(task, split, max_examples, memory_cache=cache,
                                            class_emb=class_emb)
    note = NOTES[name].format(tie_policy=retrieval.canonical_tie_policy(config.eval.tie_policy),
                              templates=len(templates))
    tasks[name] = {"data_task": task, "split": split, "metrics": metrics, "note": note,
                   "seconds": time.time() - t0}
    predictions[name] = rows
    log(f"  {name} ({time.time() - t0:.1f}s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()
                    if k.count("/") == 0 or (k.split("/")[0] in ("t2v", "v2t")
                                             and k.count("/") == 1)))

  report = {
      "kind": config.kind,
      "checkpoint": {"path": source.path, "step": source.step,
                     "experiment": source.meta.get("experiment"), "variant": variant},
      "frames": {"num_frames": num_frames, "fps": fps, "res": res},
      "text_len": text_len, "vocab_path": vpath if paths.is_remote(vpath) else os.path.abspath(vpath),
      "tasks": tasks, "config": config_lib.to_plain(config),
      "seconds": time.time() - started,
  }
  out = paths.path(workdir)
  if jax.process_index() == 0:  # Each file written whole (viit_jax.paths).
    paths.write_atomic(out / METRICS_JSON, json.dumps(report, indent=1).encode())
    paths.write_text(out / METRICS_MD, markdown(report))
    for name, rows in predictions.items():
      paths.write_atomic(out / "predictions" / f"{name}.jsonl", paths.jsonl_bytes(rows))
  log(f"wrote {out / METRICS_JSON} and {METRICS_MD} ({report['seconds']:.1f}s)")
  return report


def main(args: runtime.Args) -> int:
  evaluate(args.config, args.workdir, log=runtime.process0_log)
  return 0


if __name__ == "__main__":
  runtime.run(main)
