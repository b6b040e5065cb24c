"""Phase 5: zero-shot evaluation of a VLM or dual-encoder checkpoint on seqio tasks.

  python -m viit_jax.evaluate --config=configs/evaluate_demo.py:<key=value,...> --workdir=DIR

Reads top to bottom: config -> the checkpoint's step and meta (its training config) -> frames,
resolution, tokenizer (the config's, else the checkpoint's) -> seqio tasks -> model + parameters
restored straight into their shardings on this process's mesh -> each evaluation task ->
`metrics.json`, `metrics.md`, `predictions/<task>.jsonl` in the workdir (process 0 writes).

Tasks (`eval.tasks`, '+'-joined; '' = all of the kind):
  kind=vlm, greedy decoding (viit_jax.decoding, cached) of the prompt [BOS + prompt + "\\n"],
  run by `seqio.Evaluator` over the registered task (its postprocess_fn and metric_fns:
  viit_jax.metrics.task_fns; the decoder is its predict_fn):
    msrvtt_caption     prompt "Generate the alt-text:"; CIDEr (pycocoevalcap's Cider = CIDEr-D),
                       BLEU-4, METEOR, ROUGE-L after the PTB tokenizer, against all references.
    nextqa_oe          prompt "Answer in en: <question>"; WUPS@0 and WUPS@0.9 overall, per type
                       and per group (viit_jax.metrics.wups: official NExT-OE algorithm, WordNet
                       3.0; its documented deviation: lemmas without a POS tagger). Trailing
                       punctuation of a prediction is stripped first (the official code would
                       keep "left." as a token "left." outside WordNet).
    msrvtt_qa          prompt "Answer in en: <question>"; accuracy: exact match after
                       viit_jax.metrics.qa's normalisation, overall and per question word, on
                       MSR-VTT-QA (<msrvtt>/MSRVTT-QA/<split>_qa.json; the demo world writes it).
  kind=dual_encoder, embeddings computed in batches sharded over the mesh (`Embedder`):
    msrvtt_retrieval   text->video and video->text R@1/5/10, MedR, MeanR over the 1k-A pairs
                       (videos de-duplicated by video_id, so several texts per video work too);
                       similarities blockwise on device (`sharded_retrieval_metrics`), ties per
                       `eval.tie_policy` (expected by default: the expectation over random
                       tie-breaking), with the optimistic and pessimistic values beside it.
    kinetics_zero_shot top-1 / top-5: class embedding = normalised mean of the normalised text
                       embeddings of every template filled with the class name.
Video frames: the task's centred window of num_frames at fps (data/video.py), the checkpoint's
frames/fps/res unless `data.*` sets them (an image model evaluated on 8 frames: data.num_frames=8;
the VLM has no temporal parameter, ViT-st's PE_t fixes its frame count).
Multi-process: VLM tasks: process p decodes examples i % P == p on its own devices, the predictions
are gathered once and every process scores them (the metrics equal a 1-process run's); dual-encoder
tasks: process p embeds the video batches b % P == p, one all-gather shares the embeddings (every
process still reads every clip; texts are embedded by every process). Process 0 writes.
"""
from __future__ import annotations

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
TASKS = {"vlm": ("msrvtt_caption", "nextqa_oe", "msrvtt_qa"),
         "dual_encoder": ("msrvtt_retrieval", "kinetics_zero_shot")}
# Evaluation task -> the data task role it reads (data.tasks names; demo_<...> on the demo world).
DATA_ROLES = {"msrvtt_caption": "msrvtt_caption", "nextqa_oe": "nextqa_oe",
              "msrvtt_qa": "msrvtt_qa", "msrvtt_retrieval": "msrvtt_retrieval",
              "kinetics_zero_shot": "kinetics"}
NOTES = {
    "msrvtt_caption": "CIDEr is pycocoevalcap's Cider (CIDEr-D); PTB-tokenised; x100.",
    "nextqa_oe": "Official NExT-OE WUPS (WordNet 3.0, first synsets); lemmas without a POS "
                 "tagger; trailing punctuation of predictions stripped; x100.",
    "msrvtt_qa": "MSR-VTT-QA exact match (lower-case, punctuation -> space, no articles) against "
                 "the one answer; per question word; x100.",
    "msrvtt_retrieval": "1k-A style; R@K x100, MedR/MeanR 1-based; ties: {tie_policy} (the "
                        "optimistic and pessimistic rows bound it).",
    "kinetics_zero_shot": "Prompt-template ensemble ({templates} templates); ties: {tie_policy} "
                          "(/optimistic, /pessimistic: its bounds).",
}
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"


# ------------------------------------------------------------------------------------------------
# Set-up: checkpoint, data, model.


def task_names(config: ml_collections.ConfigDict) -> list[str]:
  """The evaluation tasks of the config (all of `kind` when eval.tasks is '')."""
  if config.kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {config.kind!r}")
  names = [n.strip() for n in config.eval.tasks.replace(",", "+").split("+") if n.strip()]
  if not names:
    return list(TASKS[config.kind])
  bad = [n for n in names if n not in TASKS[config.kind]]
  if bad:
    raise ValueError(f"eval.tasks {bad} are not tasks of kind={config.kind} "
                     f"(its tasks: {TASKS[config.kind]})")
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


def _rows(config: ml_collections.ConfigDict, task: str, split: str) -> Any:
  """The task's examples in order (the first eval.max_examples), one pass."""
  ds = seqio.get_mixture_or_task(task).get_dataset(
      sequence_length=None, split=split, shuffle=False, num_epochs=1, trim_output_features=False)
  if config.eval.max_examples > 0:
    ds = ds.take(int(config.eval.max_examples))
  return ds


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
                     row: Callable[[str, Mapping[str, Any]], dict[str, Any]]
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

    evaluator = tasks_lib.evaluator(task, split, max_examples)
    future, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict_fn)
    metrics = {k: float(v) for k, v in future.result()[task].items()}
    return {**metrics, "count": float(len(rows))}, rows


def gather_rows(mine: Sequence[tuple[int, np.ndarray]], shape: tuple[int, ...],
                dtype: Any = np.int32) -> list[tuple[int, np.ndarray]]:
  """Every process's (row index, array[shape]) on every process, in no particular order (the
  row counts, then one all-gather of the largest count of rows per process, padded with index
  -1)."""
  procs = jax.process_count()
  if procs == 1:
    return list(mine)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  per = int(np.max(multihost_utils.process_allgather(np.int32(len(mine)))))
  index = np.full((per,), -1, np.int32)
  values = np.zeros((per, *shape), dtype)
  for j, (i, v) in enumerate(mine):
    index[j], values[j] = i, v
  all_index = np.asarray(multihost_utils.process_allgather(index)).reshape(-1)
  all_values = np.asarray(multihost_utils.process_allgather(values)).reshape(-1, *shape)
  return [(int(i), v) for i, v in zip(all_index, all_values) if i >= 0]


# The example fields each kind of task keeps in its predictions file.
ROW_FIELDS = {"msrvtt_caption": ("video_id", "references"),
              "nextqa_oe": ("key", "type", "question", "answers"),
              "msrvtt_qa": ("key", "type", "question", "answers")}


def task_role(task: str) -> str:
  """The evaluation role of a data task name (demo_msrvtt_caption -> msrvtt_caption)."""
  for role, demo in tasks_lib.DEMO_TASK_NAMES.items():
    if task in (role, demo) and role in ROW_FIELDS:
      return role
  raise KeyError(f"{task!r} is not a VLM evaluation task ({list(ROW_FIELDS)})")


def caption_row(prediction: str, ex: Mapping[str, Any]) -> dict[str, Any]:
  return {"video_id": _text(ex["video_id"]), "prediction": prediction,
          "references": _texts(ex["references"])}


def qa_row(prediction: str, ex: Mapping[str, Any]) -> dict[str, Any]:
  return {"key": _text(ex["key"]), "type": _text(ex["type"]), "question": _text(ex["question"]),
          "prediction": prediction, "answers": _texts(ex["answers"])}


# ------------------------------------------------------------------------------------------------
# Dual-encoder tasks.


class SplitVideoEmbeddings:
  """Video embeddings of a stream of frame batches, split over processes: process p embeds the
  batches b % P == p on its own devices as they come (frames are never all in memory);
  `gather()` shares them with one all-gather and returns all of them in order."""

  def __init__(self, embedder: embed.Embedder, params: Any):
    self.embedder, self.params = embedder, params
    self.procs, self.me = jax.process_count(), jax.process_index()
    self.mine: list[tuple[int, np.ndarray]] = []
    self.batches = self.total = self.dim = 0

  def add(self, frames: np.ndarray | None) -> None:
    if frames is None:
      return
    if self.batches % self.procs == self.me:
      emb = self.embedder.videos(self.params, frames)
      self.dim = emb.shape[1]
      self.mine += [(self.total + i, emb[i]) for i in range(len(emb))]
    self.batches += 1
    self.total += len(frames)

  def gather(self) -> np.ndarray:
    """float32[videos, D]."""
    dim = self.dim
    if self.procs > 1:  # A process may have embedded nothing.
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      dim = int(np.max(multihost_utils.process_allgather(np.int32(dim))))
    rows = dict(gather_rows(self.mine, (dim,), np.float32))
    return np.stack([rows[i] for i in range(self.total)])


def _video_batches(ds: Any, batch_size: int, key: str
                   ) -> Iterator[tuple[list[Mapping[str, Any]], np.ndarray]]:
  """(examples, frames uint8[n, T, H, W, 3]) in groups of batch_size, one frame stack per
  distinct `key` (its first example)."""
  seen: set[str] = set()
  examples, frames = [], []
  for ex in pp.numpy_iterator(ds):
    k = _text(ex[key])
    first = k not in seen
    seen.add(k)
    examples.append({**{f: v for f, v in ex.items() if f != "frames"}, "_first": first})
    if first:
      frames.append(ex["frames"])
    if len(frames) == batch_size:
      yield examples, np.stack(frames)
      examples, frames = [], []
  if examples:
    yield examples, (np.stack(frames) if frames else None)


def eval_retrieval(config, embedder: embed.Embedder, params: Any, vocab: seqio.Vocabulary,
                   text_len: int, task: str, split: str) -> tuple[dict[str, float], list]:
  """Streams the pairs: video embeddings batch by batch (frames never all in memory)."""
  video_index: dict[str, int] = {}
  videos = SplitVideoEmbeddings(embedder, params)
  texts, t2v = [], []
  for examples, frames in _video_batches(_rows(config, task, split), embedder.batch_size,
                                         "video_id"):
    videos.add(frames)
    for ex in examples:
      vid = _text(ex["video_id"])
      if ex["_first"]:
        video_index[vid] = len(video_index)
      texts.append(_text(ex["text"]))
      t2v.append(video_index[vid])
  if not texts:
    raise ValueError(f"{task}/{split} has no pairs")
  text_emb = embedder.texts(params, pp.text_tokens(vocab, texts, text_len))
  metrics = retrieval.sharded_retrieval_metrics(
      text_emb, videos.gather(), np.asarray(t2v, np.int64), mesh=embedder.mesh,
      tie_policy=config.eval.tie_policy, block_size=int(config.eval.retrieval_block_size),
      with_bounds=True)
  rows = [{"text": t, "video_id": v} for t, v in zip(texts, np.array(list(video_index))[t2v])]
  return {**metrics, "num_texts": float(len(texts)), "num_videos": float(len(video_index))}, rows


def eval_zero_shot(config, embedder: embed.Embedder, params: Any, vocab: seqio.Vocabulary,
                   text_len: int, task: str, split: str) -> tuple[dict[str, float], list]:
  labels_all = tasks_lib.task_info(task).labels.get(split)
  if not labels_all:
    raise ValueError(f"{task} has no class names for split {split}")
  templates = tuple(config.eval.zero_shot_templates) or classification.DEFAULT_TEMPLATES
  videos = SplitVideoEmbeddings(embedder, params)
  labels, clips = [], []
  for examples, frames in _video_batches(_rows(config, task, split), embedder.batch_size,
                                         "clip_id"):
    kept = [i for i, ex in enumerate(examples) if ex["_first"]]
    videos.add(frames)
    for i in kept:
      labels.append(int(examples[i]["label_id"]))
      clips.append(_text(examples[i]["clip_id"]))
  if not labels:
    raise ValueError(f"{task}/{split} has no clips")

  def encode(prompts: list[str]) -> np.ndarray:
    return embedder.texts(params, pp.text_tokens(vocab, prompts, text_len))

  class_emb = classification.class_embeddings(encode, list(labels_all), templates)
  video = videos.gather()
  metrics = classification.zero_shot_accuracy(video, class_emb, np.asarray(labels), ks=(1, 5),
                                              tie_policy=config.eval.tie_policy, with_bounds=True)
  pred = np.argmax(video @ class_emb.T, axis=1)
  rows = [{"clip_id": c, "label": labels_all[y], "prediction": labels_all[p]}
          for c, y, p in zip(clips, labels, pred)]
  return {**metrics, "count": float(len(labels)), "num_classes": float(len(labels_all))}, rows


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
    if name in ("nextqa_oe", "msrvtt_qa"):  # Rows: metric; columns: all, groups, types.
      present = {k.split("/", 1)[1] for k in m if "/" in k}
      order = (*wups.GROUPS, *wups.QUESTION_TYPES, *readers.MSRVTT_QA_TYPES, "other")
      cols = ["all"] + [k for k in order if k in present]
      lines += ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
      for metric in [k for k in m if "/" not in k]:
        vals = [m[metric] if c == "all" else m.get(f"{metric}/{c}") for c in cols]
        lines.append(f"| {metric} | " + " | ".join("" if v is None else _fmt(v) for v in vals)
                     + " |")
    elif name == "msrvtt_retrieval":
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
  names = task_names(config)
  source = runtime.checkpoint_source(config.checkpoint, config.checkpoint_step)
  num_frames = int(_setting(config, source, "num_frames"))
  fps = float(_setting(config, source, "fps"))
  res = int(_setting(config, source, "res"))
  text_len = int(_setting(config, source, "text_len"))
  vpath = vocab_path(config, source)
  registry.register_for_eval(config.data, num_frames=num_frames, fps=fps, res=res,
                             vocab_path=vpath, caption_metrics=tuple(config.eval.caption_metrics))
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
  split_of = {"msrvtt_caption": config.eval.caption_split, "nextqa_oe": config.eval.qa_split,
              "msrvtt_qa": config.eval.qa_split, "msrvtt_retrieval": config.eval.retrieval_split,
              "kinetics_zero_shot": config.eval.kinetics_split}
  if config.kind == "vlm":
    evaluator = VLMEvaluator(model_cfg, params, vocab, mesh, batch_size=batch,
                             prompt_len=text_len, max_decode_len=int(config.eval.max_decode_len),
                             seed=int(config.eval.seed))
  else:
    embedder = embed.Embedder(de_lib.DualEncoder(model_cfg), mesh, batch)
  max_examples = int(config.eval.max_examples)
  for name in names:
    t0 = time.time()
    task, split = data_task(config, name), split_of[name]
    if name == "msrvtt_caption":
      metrics, rows = evaluator.seqio_evaluate(task, split, max_examples, caption_row)
    elif name in ("nextqa_oe", "msrvtt_qa"):
      metrics, rows = evaluator.seqio_evaluate(task, split, max_examples, qa_row)
    elif name == "msrvtt_retrieval":
      metrics, rows = eval_retrieval(config, embedder, params, vocab, text_len, task, split)
    else:
      metrics, rows = eval_zero_shot(config, embedder, params, vocab, text_len, task, split)
    note = NOTES[name].format(tie_policy=retrieval.canonical_tie_policy(config.eval.tie_policy),
                              templates=len(tuple(config.eval.zero_shot_templates)
                                            or classification.DEFAULT_TEMPLATES))
    tasks[name] = {"data_task": task, "split": split, "metrics": metrics, "note": note,
                   "seconds": time.time() - t0}
    predictions[name] = rows
    log(f"  {name} ({time.time() - t0:.1f}s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if "/" not in k or
                    k.split("/")[0] in ("t2v", "v2t")))

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
