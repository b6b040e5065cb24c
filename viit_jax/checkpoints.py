"""Orbax checkpoints of train state, and where a run's state comes from.

On-disk layout (the contract every phase and importer follows):
```
<workdir>/checkpoints/                 an orbax CheckpointManager directory
<workdir>/checkpoints/<step>/state     StandardSave of {"step": int32[], "params": {...}[, "opt": ...]}
<workdir>/checkpoints/<step>/meta      JsonSave: {"experiment", "variant", "config": {...}}
<workdir>/checkpoints/<step>/data      JsonSave: the data position, e.g. {"step": 120, "seed": 0, ...}
```
Writes are atomic (orbax writes a temporary directory and renames it on commit) and asynchronous
(training continues while arrays are written); at most `keep` checkpoints are kept.

`restore_or_init` picks the state in this order:
1. the workdir's own newest readable checkpoint (a resumed or restarted run: full state, data
   position); a torn or corrupt newer one is skipped and named in the description;
2. else `init_from`: another workdir (its latest checkpoint, or `init_step`) or a `.npz` of public
   weights; only parameters are taken, renamed by a t5x-style assignment map (a list of
   `(regex, replacement)`; the first rule whose regex full-matches a *target* parameter name gives the
   source name via `match.expand(replacement)`; `None` keeps the fresh initialisation; no matching rule
   means the same name). Source parameters nobody asks for are not read (partial restore).
3. else the fresh initialisation.
Restores always go against abstract targets (`jax.ShapeDtypeStruct` with the *current* shardings), so
a checkpoint written on one mesh / device count / process count restores on another.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from viit_jax import paths

CHECKPOINT_DIR = "checkpoints"
State = dict[str, Any]  # {"step": int32[], "params": nested dict, "opt": optax state}
AssignmentMap = Sequence[tuple[str, str | None]]

_ITEM_HANDLERS = {"meta": ocp.JsonCheckpointHandler, "data": ocp.JsonCheckpointHandler}


def checkpoint_dir(workdir: str | os.PathLike) -> str:
  """`<workdir>/checkpoints` (absolute when local; a `gs://` workdir stays a URL)."""
  return os.fspath(paths.path(workdir) / CHECKPOINT_DIR)


class SaveFailed(RuntimeError):
  """A checkpoint could not be written (a full disk, a lost bucket); older ones are intact."""


class Checkpointer:
  """The CheckpointManager of one workdir: save every N steps, keep K, async, atomic.

  A save that fails (in the background or not) raises SaveFailed at the next call that waits for
  it (`save`, `wait`, `close`), naming the step and the newest committed checkpoint. orbax writes a
  step into `<step>.orbax-checkpoint-tmp` and renames it when complete, so a failed save never
  touches the committed steps; the next start deletes the temporary directory.
  """

  def __init__(self, workdir: str | os.PathLike, *, save_every: int, keep: int,
               async_save: bool = True):
    """Opens (creating if needed) `<workdir>/checkpoints`.

    Args:
      workdir: the run directory.
      save_every: `maybe_save` saves at steps that are multiples of this (and when forced).
      keep: how many checkpoints to keep (older ones are deleted after a newer one commits).
      async_save: write arrays in the background while training continues.
    """
    if save_every < 1 or keep < 1:
      raise ValueError(f"save_every and keep must be >= 1, got {save_every}, {keep}")
    self.directory = checkpoint_dir(workdir)
    self.save_every = save_every
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True)
    handlers = {"state": ocp.StandardCheckpointHandler(),
                **{k: v() for k, v in _ITEM_HANDLERS.items()}}
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    self._saving: int | None = None  # The step of the save in flight.
    self._failed: SaveFailed | None = None

  def _committed_steps(self) -> list[int]:
    """Steps whose directory was renamed into place (the store's listing, not orbax's cache)."""
    root = paths.path(self.directory)
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.exists() else []

  def _waited(self, fn: Callable[[], Any]) -> Any:
    """Runs a manager call that waits for the save in flight; its failure becomes SaveFailed."""
    if self._failed is not None:
      raise self._failed
    try:
      return fn()
    except Exception as e:  # pylint: disable=broad-except
      committed = self._committed_steps()
      self._failed = SaveFailed(
          f"saving checkpoint step {self._saving} in {self.directory} failed: "
          f"{type(e).__name__}: {str(e)[:600]}. The newest committed checkpoint is "
          f"{f'step {committed[-1]}' if committed else 'none'}; free space (or fix the store) "
          "and rerun the same command to resume from it.")
      raise self._failed from e

  def latest_step(self) -> int | None:
    """The newest committed checkpoint step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Committed checkpoint steps, ascending."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: State, *, data: Mapping[str, Any],
           meta: Mapping[str, Any]) -> None:
    """Starts an (async) save of `state` with its data position and meta at `step`."""
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(dict(data)),
                              meta=ocp.args.JsonSave(dict(meta)))
    self._waited(lambda: self._manager.wait_until_finished())  # The previous save's outcome.
    self._saving = step
    self._waited(lambda: self._manager.save(step, args=args, force=True))

  def maybe_save(self, step: int, state: State, *, data: Mapping[str, Any],
                 meta: Mapping[str, Any], force: bool = False) -> bool:
    """Saves if `step` is a multiple of `save_every` (or `force`) and not saved yet."""
    if not force and step % self.save_every:
      return False
    if step in self._manager.all_steps():
      return False
    self.save(step, state, data=data, meta=meta)
    return True

  def restore(self, step: int, abstract_state: State) -> tuple[State, dict[str, Any]]:
    """(state, data position) of checkpoint `step`, placed per `abstract_state`'s shardings."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["data"] or {})

  def read_meta(self, step: int) -> dict[str, Any]:
    """The `meta` JSON of checkpoint `step`."""
    return dict(self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"])

  def wait(self) -> None:
    """Blocks until any background save has committed; SaveFailed if it failed."""
    self._waited(self._manager.wait_until_finished)

  def close(self) -> None:
    """Waits for pending saves and releases the manager; SaveFailed if a save failed that no
    earlier call reported (after one did, it only releases)."""
    reported = self._failed is not None
    try:
      if not reported:
        self._waited(self._manager.wait_until_finished)
    finally:
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except
        if self._failed is None:
          raise


# ------------------------------------------------------------------------------------------------
# Assignment maps and parameter sources.


def _flat(tree: Any) -> dict[str, Any]:
  return {"/".join(map(str, k)): v for k, v in traverse_util.flatten_dict(tree).items()}


def _unflat(flat: Mapping[str, Any]) -> Any:
  return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def map_names(target_names: Sequence[str], assignment_map: AssignmentMap) -> dict[str, str | None]:
  """Target parameter name -> source name (None: keep the fresh init), per the assignment map."""
  rules = [(re.compile(pattern), repl) for pattern, repl in assignment_map]
  out: dict[str, str | None] = {}
  for name in target_names:
    out[name] = name
    for pattern, repl in rules:
      m = pattern.fullmatch(name)
      if m:
        out[name] = None if repl is None else m.expand(repl)
        break
  return out


@dataclasses.dataclass(frozen=True)
class InitReport:
  """What `load_params_into` did: names taken from the source, kept fresh, and source leftovers."""
  source: str
  loaded: tuple[str, ...]
  kept: tuple[str, ...]
  unused_source: tuple[str, ...]

  def summary(self) -> str:
    kept = ""
    if self.kept:
      kept = f" ({', '.join(self.kept[:5])}{'...' if len(self.kept) > 5 else ''})"
    return (f"init_from {self.source}: loaded {len(self.loaded)} params, kept {len(self.kept)} "
            f"fresh{kept}, {len(self.unused_source)} source params unused")


def _plan(target: Mapping[str, jax.ShapeDtypeStruct], source_shapes: Mapping[str, tuple[int, ...]],
          assignment_map: AssignmentMap, source: str) -> tuple[dict[str, str], list[str]]:
  """({target: source} to load, [targets kept fresh]); errors name missing or mis-shaped params."""
  names = map_names(list(target), assignment_map)
  load, kept, missing, bad_shape = {}, [], [], []
  for t, s in names.items():
    if s is None:
      kept.append(t)
    elif s not in source_shapes:
      missing.append(f"{t} (source name {s})" if s != t else t)
    elif tuple(source_shapes[s]) != tuple(target[t].shape):
      bad_shape.append(f"{t} {tuple(target[t].shape)} <- {s} {tuple(source_shapes[s])}")
    else:
      load[t] = s
  if missing or bad_shape:
    raise ValueError(
        f"Cannot initialise from {source}: "
        + (f"{len(missing)} target params not in the source: {missing[:10]}; " if missing else "")
        + (f"{len(bad_shape)} shape mismatches: {bad_shape[:10]}; " if bad_shape else "")
        + "add an assignment-map rule (regex, source name) or (regex, None) to keep fresh init.")
  return load, kept


def _source_manager(path: str) -> ocp.CheckpointManager:
  """A read-only manager over `<path>/checkpoints` (or `path` itself if it is one)."""
  directory = checkpoint_dir(path)
  if not paths.path(directory).is_dir():
    directory = paths.name(path)
  handlers = {"state": ocp.PyTreeCheckpointHandler(), **{k: v() for k, v in _ITEM_HANDLERS.items()}}
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      read_only=True, create=False, save_interval_steps=0),
                               item_handlers=handlers)


def _load_from_workdir(path: str, step: int, target: Mapping[str, jax.ShapeDtypeStruct],
                       assignment_map: AssignmentMap) -> tuple[dict[str, jax.Array], InitReport]:
  manager = _source_manager(path)
  try:
    steps = manager.all_steps()
    if not steps:
      raise FileNotFoundError(f"init_from={path!r}: no committed checkpoint under "
                              f"{manager.directory}")
    if step < 0:
      step = max(steps)
    elif step not in steps:
      raise FileNotFoundError(f"init_from={path!r}: no checkpoint at step {step} (have {steps})")
    meta = manager.item_metadata(step)["state"]
    tree = meta.tree if hasattr(meta, "tree") else meta
    if "params" not in tree:
      raise ValueError(f"init_from={path!r}: checkpoint state has no 'params' (keys {list(tree)})")
    source_shapes = {k: tuple(v.shape) for k, v in _flat(tree["params"]).items()}
    load, kept = _plan(target, source_shapes, assignment_map, f"{path} step {step}")
    # One read per source name; the first target using it decides dtype and sharding.
    wanted: dict[str, jax.ShapeDtypeStruct] = {}
    for t, s in load.items():
      wanted.setdefault(s, target[t])
    item = {"params": _unflat(wanted)}
    restore_args = jax.tree.map(
        lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding, dtype=x.dtype), item)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True)))
    got = _flat(restored["state"]["params"])
  finally:
    manager.close()
  out = {}
  for t, s in load.items():
    x = got[s]
    out[t] = x if x.sharding == target[t].sharding else jax.device_put(x, target[t].sharding)
  unused = tuple(sorted(set(source_shapes) - set(load.values())))
  return out, InitReport(f"{path} step {step}", tuple(sorted(load)), tuple(sorted(kept)), unused)


def load_npz(path: str) -> dict[str, np.ndarray]:
  """A big_vision `.npz` as {'/'-joined name: array}: drops a leading `params/`, views bf16 voids."""
  out = {}
  with paths.path(path).open("rb") as raw, np.load(raw, allow_pickle=False) as f:
    for k in f.files:
      v = f[k]
      if v.dtype.kind == "V" and v.dtype.itemsize == 2:
        v = v.view(ml_dtypes.bfloat16)
      out[k[len("params/"):] if k.startswith("params/") else k] = v
  return out


def _load_from_npz(path: str, target: Mapping[str, jax.ShapeDtypeStruct],
                   assignment_map: AssignmentMap) -> tuple[dict[str, jax.Array], InitReport]:
  try:
    arrays = load_npz(path)
  except (OSError, zipfile.BadZipFile, ValueError) as e:
    raise ValueError(f"init_from={path!r}: not a readable .npz: {e}") from e
  load, kept = _plan(target, {k: v.shape for k, v in arrays.items()}, assignment_map, path)
  out = {}
  for t, s in load.items():
    host = np.asarray(arrays[s]).astype(target[t].dtype)
    out[t] = jax.make_array_from_callback(host.shape, target[t].sharding, lambda i, h=host: h[i])
  unused = tuple(sorted(set(arrays) - set(load.values())))
  return out, InitReport(path, tuple(sorted(load)), tuple(sorted(kept)), unused)


def load_params_into(params: Any, source: str, *, assignment_map: AssignmentMap = (),
                     step: int = -1) -> tuple[Any, InitReport]:
  """`params` with the leaves named by the assignment map replaced by arrays read from `source`.

  Args:
    params: the target tree: placed arrays, or ShapeDtypeStructs with shardings; its shapes, dtypes
      and shardings are the restore targets. Leaves kept fresh (rule `None`) are returned as given.
    source: a workdir (or its `checkpoints/` dir) in the layout above, or a `.npz` file.
    assignment_map: `(regex, replacement or None)` rules, see the module docstring.
    step: checkpoint step of a workdir source; -1 = latest.

  Returns:
    (new params, InitReport).
  """
  flat = _flat(params)
  target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=v.sharding) for k, v in flat.items()}
  if source.endswith(".npz"):
    loaded, report = _load_from_npz(source, target, assignment_map)
  elif paths.path(source).is_dir():
    loaded, report = _load_from_workdir(source, step, target, assignment_map)
  else:
    raise FileNotFoundError(f"init_from={source!r} is neither a workdir nor a .npz file")
  flat.update(loaded)
  return _unflat(flat), report


def restore_or_init(
    checkpointer: Checkpointer,
    abstract_state: State,
    init_params: Callable[[], Any],
    make_state: Callable[[Any], State],
    *,
    init_from: str = "",
    assignment_map: AssignmentMap = (),
    init_step: int = -1,
) -> tuple[State, dict[str, Any], str]:
  """The run's starting state: own latest checkpoint > `init_from` params > fresh init.

  Args:
    checkpointer: the workdir's checkpointer.
    abstract_state: ShapeDtypeStructs (with the current shardings) of the full state
      {"step", "params", "opt"}; the restore target for a resume.
    init_params: builds fresh, sharded parameters (not called when resuming, nor when `init_from`
      provides every parameter).
    make_state: params -> the step-0 state around them (fresh optimizer state).
    init_from: '' or a workdir / `.npz` to take initial parameters from (see `load_params_into`).
    assignment_map: t5x-style rules for `init_from`.
    init_step: checkpoint step of an `init_from` workdir; -1 = latest.

  Returns:
    (state, data position (empty dict if not resumed), a one-line description of the source).
  """
  steps = checkpointer.all_steps()
  skipped: list[str] = []
  for step in reversed(steps):  # The newest readable one; a torn or corrupt one is skipped.
    try:
      state, data = checkpointer.restore(step, abstract_state)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
      skipped.append(f"step {step} ({type(e).__name__}: {str(e)[:200]})")
      logging.warning("checkpoint step %d of %s is unreadable, trying an older one: %s", step,
                      checkpointer.directory, e)
      continue
    note = f"; skipped unreadable {', '.join(skipped)}" if skipped else ""
    return state, data, f"resumed from own checkpoint step {step} ({checkpointer.directory}){note}"
  if steps:
    raise RuntimeError(f"no readable checkpoint in {checkpointer.directory}: {'; '.join(skipped)}"
                       "; move the directory away to start afresh")
  if not init_from:
    return make_state(init_params()), {}, "fresh initialisation"
  params, report = load_params_into(abstract_state["params"], init_from,
                                    assignment_map=assignment_map, step=init_step)
  if report.kept:  # Some parameters keep their fresh initialisation.
    fresh = _flat(init_params())
    params = _unflat({k: fresh[k] if k in report.kept else v for k, v in _flat(params).items()})
  logging.info("%s", report.summary())
  return make_state(params), {}, report.summary()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of placed arrays."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
