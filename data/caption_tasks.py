"""seqio tasks over auto-labeled caption datasets (the output of `python -m viit_jax.autolabel`).

Phase 4 (the dual encoder) trains on the machine captions: each example is a clip's frames and all K
captions the VLM wrote for it; `suffix` is one of them drawn at random per example (seqio's seeded
stateless RNG), as the paper samples one caption per clip per step.

Examples (split "train"):
  frames         uint8[T, res, res, 3]  (random temporal window, data/video.py's rule)
  clip_id        str
  alt_text       str                    the corpus's own text (for the alt-text baseline)
  captions       str[K]                 every caption of the clip (also kept as "references")
  prefix/suffix  int32 tokens           prompt / one random caption (+ *_pretokenized text)

Only a finished dataset (manifest.json present, i.e. every work unit written) can be registered; the
rows are read from the units the manifest lists, in order. Clips whose video fails to decode at
training time are skipped and counted in `caption_task_rejects(name)`.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Iterator

import ml_collections
import seqio
import tensorflow_datasets as tfds

from data import preprocessors as pp
from data import tasks as tasks_lib
from data.rejects import Rejects
from data.tfds_builders import ClipItem, Sampling
from viit_jax import caption_sets

SPLIT = "train"
_REJECTS: dict[str, Rejects] = {}


def caption_features(num_frames: int, res: int) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "clip_id": tfds.features.Text(), "alt_text": tfds.features.Text(),
      "captions": tfds.features.Sequence(tfds.features.Text()),
      "frames": tfds.features.Video(shape=(num_frames, res, res, 3))})


def register_caption_task(name: str, dataset_dir: str | pathlib.Path,
                          video_root: str | pathlib.Path | None, num_frames: int, fps: float,
                          res: int, vocab_path: str | pathlib.Path, *,
                          prompt: str = pp.CAPTION_PROMPT, decode_workers: int = 1,
                          shuffle_buffer_size: int = 64,
                          rejects_path: str | pathlib.Path | None = None,
                          cache_decoded: bool = False) -> str:
  """Registers (or replaces) a seqio task over an auto-labeled dataset; returns its name.

  Args:
    name: task name.
    dataset_dir: <autolabel workdir>/<version> (holds manifest.json and units/).
    video_root: where the rows' relative video paths live; None or '' = the corpus root recorded
      in the manifest (set it when the videos moved).
    num_frames, fps, res: frame sampling of the training clips (random window).
    vocab_path: SentencePiece model for prefix/suffix tokens.
    prompt: the prefix text (the dual encoder ignores it; a VLM self-training mix uses it).
    decode_workers, shuffle_buffer_size: as data.tasks.register_demo_tasks.
    rejects_path: optional JSONL for clips that fail to decode.
    cache_decoded: as data.tasks.register_demo_tasks.
  """
  dataset_dir = pathlib.Path(dataset_dir)
  manifest = caption_sets.read_manifest(dataset_dir)
  root = pathlib.Path(video_root) if video_root else pathlib.Path(manifest["corpus"]["video_root"])
  if not root.is_dir():
    raise FileNotFoundError(f"video root {root} does not exist")
  rejects = Rejects(name, rejects_path)

  def items_fn(split: str, rejects: Rejects) -> Iterator[ClipItem]:
    del split, rejects  # One split; the rows were validated when they were written.
    for row in caption_sets.caption_rows(dataset_dir):
      segment = tuple(row["segment"]) if row["segment"] else None
      yield ClipItem(row["clip_id"], root / row["path"],
                     {"clip_id": row["clip_id"], "alt_text": row["alt_text"],
                      "captions": list(row["captions"])}, segment=segment)

  source = tasks_lib.pyav_source(
      items_fn, [SPLIT], caption_features(num_frames, res),
      sampling={SPLIT: Sampling(num_frames, fps, res, "random")}, rejects=rejects,
      decode_workers=decode_workers, cache_decoded=cache_decoded)
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name, source=source,
      preprocessors=[
          functools.partial(pp.caption_from_list, key="captions", pick="random", prompt=prompt),
          functools.partial(pp.check_frames, num_frames=num_frames, res=res),
          pp.tokenize_text],
      output_features=tasks_lib.output_features(tasks_lib.vocabulary(str(vocab_path))),
      shuffle_buffer_size=shuffle_buffer_size)
  _REJECTS[name] = rejects
  return name


def caption_task_rejects(name: str) -> Rejects:
  """Clips of a registered caption task that failed to decode (counted by reason)."""
  if name not in _REJECTS:
    raise KeyError(f"caption task {name!r} was not registered by data.caption_tasks")
  return _REJECTS[name]


CAPTION_SOURCES = ("alt_text", "smit", "viit", "frame_captions", "stills")


# ------------------------------------------------------------------------------------------------
# The dual encoder's caption sources (dual_encoder.caption_source).


@dataclasses.dataclass(frozen=True)
class CaptionSource:
  """One training stream of clips with captions.

  Attributes:
    name: alt_text | smit | viit | frame_captions.
    task: the seqio task it reads.
    split: the split it reads.
    key_field: the example's clip id field (the caption/crop draws are keyed by it).
    captions_field: the example's captions, str[K] (after the task's seqio preprocessors).
    rate: sampling rate in a mixture.
    item_captions_field: the same captions in the raw item, before any preprocessor: str or
      str[K] (`data.process_split=indexed` reads raw items; see CaptionItems).
  """
  name: str
  task: str
  split: str
  key_field: str
  captions_field: str
  rate: float
  item_captions_field: str


def parse_caption_source(spec: str) -> list[tuple[str, float]]:
  """'alt_text' or 'alt_text:1+viit:3' -> [(name, rate), ...] (rate 1 when omitted).

  Parts are separated by '+' (or ',', which needs quoting inside a --config argument).
  """
  out: list[tuple[str, float]] = []
  for part in [p.strip() for p in spec.replace("+", ",").split(",") if p.strip()]:
    name, _, rate = part.partition(":")
    name = name.strip()
    if name not in CAPTION_SOURCES:
      raise ValueError(f"dual_encoder.caption_source: unknown source {name!r} in {spec!r}; "
                       f"known: {CAPTION_SOURCES}")
    try:
      value = float(rate) if rate else 1.0
    except ValueError as e:
      raise ValueError(f"dual_encoder.caption_source: bad rate {rate!r} in {spec!r}") from e
    if value <= 0:
      raise ValueError(f"dual_encoder.caption_source: rate of {name} must be > 0, got {value}")
    if name in [n for n, _ in out]:
      raise ValueError(f"dual_encoder.caption_source: {name} given twice in {spec!r}")
    out.append((name, value))
  if not out:
    raise ValueError("dual_encoder.caption_source is empty")
  return out


def autolabel_task_name(source: str) -> str:
  return f"de_{source}_captions"


def caption_sources(config: ml_collections.ConfigDict, vocab_path: str) -> list[CaptionSource]:
  """The configured sources, registering the auto-label tasks they need."""
  d, de = config.data, config.dual_encoder
  demo = d.source == "demo"
  out = []
  for name, rate in parse_caption_source(de.caption_source):
    if name == "alt_text":
      if demo:
        task = tasks_lib.DEMO_TASK_NAMES["webvid_pool"]
      else:
        if de.pool not in ("webvid", "internvid"):
          raise ValueError(f"dual_encoder.pool must be webvid or internvid, got {de.pool!r}")
        task = f"{de.pool}_pool"
      out.append(CaptionSource(name, task, "train", "clip_id", "references", rate,
                               "alt_text"))
    elif name == "smit":
      task = tasks_lib.DEMO_TASK_NAMES["smit_caption"] if demo else "smit_caption"
      out.append(CaptionSource(name, task, "train", "video_id", "references", rate,
                               "caption"))
    elif name == "stills":
      task = tasks_lib.DEMO_TASK_NAMES["coco_caption"] if demo else "coco_caption"
      out.append(CaptionSource(name, task, "train", "image_id", "references", rate,
                               "captions"))
    else:
      directory = de.viit_captions_dir if name == "viit" else de.frame_captions_dir
      if not directory:
        raise ValueError(f"caption source {name} needs dual_encoder."
                         f"{'viit_captions_dir' if name == 'viit' else 'frame_captions_dir'}")
      task = register_caption_task(
          autolabel_task_name(name), directory, None, num_frames=d.num_frames, fps=d.fps,
          res=d.res, vocab_path=vocab_path, decode_workers=d.decode_workers,
          shuffle_buffer_size=d.shuffle_buffer, cache_decoded=d.cache_decoded)
      out.append(CaptionSource(name, task, SPLIT, "clip_id", "captions", rate,
                               "captions"))
    if out[-1].task not in seqio.TaskRegistry.names():
      raise KeyError(f"caption source {name}: seqio task {out[-1].task!r} is not registered "
                     f"(data.source={d.source!r}; for real data set data.dirs."
                     f"{'smit' if name == 'smit' else de.pool})")
  return out
