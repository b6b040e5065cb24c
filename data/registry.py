"""Registers the seqio tasks a config's `data` section names: the demo world's or the real data sets',
plus the VIIT instruction mixture over `python -m viit_jax.synthesize`'s output.

The trainers call `register_for_training(config.data)`; evaluation calls `register_for_eval` with
the frame sampling of the checkpoint it evaluates. Both raise a clear error naming the config key
when a directory or tokenizer is missing.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import seqio

from data import prepared
from data import tasks as tasks_lib
from data import viit_tasks
from viit_jax import paths

DataConfig = ml_collections.ConfigDict  # A config's `data` section (configs/base.py).


def demo_vocab_path(world_dir: str) -> str:
  """The SentencePiece model the demo world trains on its own text."""
  return os.path.join(world_dir, "spm", "demo.model")


def _check_world(d: DataConfig) -> str:
  world = os.path.abspath(d.world_dir)
  if not os.path.isfile(os.path.join(world, "manifest.json")):
    raise FileNotFoundError(
        f"data.world_dir={d.world_dir!r} holds no demo world (no manifest.json); create it with "
        f"python -m data.demo_world --out={d.world_dir} --preset=demo")
  return world


def _register_sets(d: DataConfig, *, num_frames: int, fps: float, res: int, vocab_path: str,
                   **options: Any) -> None:
  """The demo world's tasks (data.source=demo) or the real sets' (real) at this sampling."""
  if d.source == "demo":
    tasks_lib.register_demo_tasks(_check_world(d), num_frames=num_frames, fps=fps, res=res,
                                  vocab_path=vocab_path, decode_workers=d.decode_workers,
                                  **options)
  elif d.source == "real":
    dirs = {k: v for k, v in d.dirs.items() if v}
    if not dirs:
      raise ValueError("data.source=real needs at least one data.dirs.<dataset> directory")
    tasks_lib.register_real_tasks(dirs, num_frames=num_frames, fps=fps, res=res,
                                  vocab_path=vocab_path, tfds_data_dir=d.tfds_data_dir or None,
                                  decode_workers=d.decode_workers, **options)
  else:
    raise ValueError(f"data.source must be 'demo' or 'real', got {d.source!r}")


def register_for_training(d: DataConfig, *, prepared_now: bool = True
                          ) -> seqio.SentencePieceVocabulary:
  """Registers the trainers' tasks (and the VIIT mixture when data.viit_dir is set); returns the
  vocabulary (data.vocab_path, or the demo world's tokenizer). With `prepared_now`, the tasks of
  data.prepared then move onto their shards; a trainer that registers more tasks itself (the dual
  encoder's auto-labeled captions) passes False and calls register_prepared after them."""
  if d.source == "demo":
    vocab_path = d.vocab_path or demo_vocab_path(_check_world(d))
  elif not d.vocab_path:
    raise ValueError("data.source=real needs data.vocab_path (e.g. the PaliGemma tokenizer)")
  else:
    vocab_path = d.vocab_path
  vocab_path = paths.local_copy(vocab_path)  # seqio opens it by name: gs:// gets a local copy.
  _register_sets(d, num_frames=d.num_frames, fps=d.fps, res=d.res, vocab_path=vocab_path,
                 shuffle_buffer_size=d.shuffle_buffer, cache_decoded=d.cache_decoded)
  if d.viit_dir:
    viit_tasks.register_viit_tasks(
        d.viit_dir, vocab_path=vocab_path, num_frames=d.num_frames, fps=d.fps, res=d.res,
        world_dir=os.path.abspath(d.world_dir) if d.source == "demo" else "",
        rates=dict(d.viit_rates), decode_workers=d.decode_workers,
        shuffle_buffer_size=d.shuffle_buffer, cache_decoded=d.cache_decoded)
  if prepared_now:
    register_prepared(d)
  return tasks_lib.vocabulary(vocab_path)


def register_prepared(d: DataConfig) -> None:
  """Puts each task of data.prepared onto its shards (same name: mixtures and windows follow)."""
  for name, directory in prepared_dirs(d.prepared).items():
    if name not in seqio.TaskRegistry.names():
      raise ValueError(f"data.prepared names task {name!r}, which this config does not register")
    prepared.register_prepared_task(name, directory)  # Replaces the PyAV task of that name.


def prepared_dirs(spec: str) -> dict[str, str]:
  """data.prepared "task=dir,task2=dir2" (dirs built by python -m data.prepared) as a dict."""
  out: dict[str, str] = {}
  for part in filter(None, (p.strip() for p in spec.split(","))):
    name, sep, directory = part.partition("=")
    if not sep or not name or not directory:
      raise ValueError(f"data.prepared entry {part!r} is not task=directory")
    out[name.strip()] = directory.strip()
  return out


def register_for_eval(d: DataConfig, *, num_frames: int, fps: float, res: int,
                      vocab_path: str,
                      caption_metrics: Sequence[str] = tasks_lib.CAPTION_METRICS,
                      tie_policy: str = "expected") -> None:
  """Registers the evaluation tasks at the evaluated model's frame sampling, the caption task
  scored by `caption_metrics`, retrieval and zero-shot ties per `tie_policy`."""
  _register_sets(d, num_frames=num_frames, fps=fps, res=res,
                 vocab_path=paths.local_copy(vocab_path), caption_metrics=tuple(caption_metrics),
                 tie_policy=tie_policy)


def provider(name: str) -> seqio.DatasetProviderBase:
  """The registered task or mixture `name`; a KeyError that lists what is registered."""
  if name in seqio.MixtureRegistry.names() or name in seqio.TaskRegistry.names():
    return seqio.get_mixture_or_task(name)
  raise KeyError(f"seqio task or mixture {name!r} is not registered (registered: "
                 f"{sorted(seqio.TaskRegistry.names())[:40]} ...; mixtures: "
                 f"{sorted(seqio.MixtureRegistry.names())}). Phase 2's VIIT mixture needs "
                 "data.viit_dir (the output of python -m viit_jax.synthesize).")
