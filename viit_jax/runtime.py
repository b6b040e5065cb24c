"""What every entry point shares: flags and `main()`, runtime set-up, a checkpoint's model config,
parameter loading, progress formatting.

An entry point (train, train_dual_encoder, autolabel, evaluate, synthesize) is

  def main(args: runtime.Args) -> int: ...

  if __name__ == "__main__":
    runtime.run(main)

`run` defines `--config` (an ml_collections config file, locked: unknown keys are errors),
`--workdir` and, for trainers, `--resume` (train, train_dual_encoder and autolabel also take
`--compile_only`: compile the job's program, print its memory per device and exit); starts JAX multi-process when the launcher's variables
are set (before anything touches a device); quiets orbax's INFO logging unless `--verbosity` is
given; turns on the persistent compile cache; holds the workdir's lock (`workdir_lock`) while
`main` runs, so a second run on the same workdir exits with EXIT_WORKDIR_LOCKED naming the first;
and exits with `main`'s return code.

No entry point imports another: what two of them need lives here, in `loop` (the training loop),
`checkpoints` (orbax), `embed` (dual-encoder embeddings) or `data/`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from viit_jax import checkpoints
from viit_jax import paths
from viit_jax import sharding as sharding_lib
from viit_jax import workdir_lock
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib

FLAGS = flags.FLAGS
COMPILE_CACHE_ENV = "VIIT_COMPILE_CACHE"

# Exit codes every entry point shares (the launchers restart on EXIT_PREEMPTED).
EXIT_WORKDIR_MISMATCH = 2  # The workdir holds another experiment's config (no --resume).
EXIT_NON_FINITE = 3  # NaN/Inf loss, gradient or parameters; the last good checkpoint kept.
# A bulk job's circuit breaker tripped (LLM server or video store down): no unit, no manifest.
EXIT_BACKEND_FAILED = 4
EXIT_WORKDIR_LOCKED = workdir_lock.EXIT_CODE  # 5: another live run holds the workdir (named).
EXIT_SAVE_FAILED = 6  # A checkpoint could not be written (disk full); the committed ones intact.
EXIT_PREEMPTED = 42  # SIGTERM: the job saved (or finished its unit) and stopped; rerun to resume.


# ------------------------------------------------------------------------------------------------
# Flags and main().


@dataclasses.dataclass(frozen=True)
class Args:
  """The parsed command line of an entry point."""
  config: ml_collections.ConfigDict
  workdir: str
  resume: bool = False  # Trainers: continue a workdir that holds another config.


def define_flags(*, resume: bool, compile_only: bool = False) -> None:
  """--config and --workdir (required), plus --resume when `resume` and --compile_only (then
  --workdir is not needed) when `compile_only`."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/<x>.py:args).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, outputs, config.json).")
  if resume:
    flags.DEFINE_bool("resume", False, "Continue a workdir even though it holds another config.")
  flags.mark_flags_as_required(["config"])
  if not compile_only:
    flags.mark_flags_as_required(["workdir"])
    return
  flags.DEFINE_bool("compile_only", False, "Compile the job's program on this job's devices, "
                    "print its memory per device (viit_jax.aot) and exit: 0 if it fits, 1 if not. "
                    "Reads no data and writes nothing.")
  flags.register_multi_flags_validator(
      ["workdir", "compile_only"], lambda f: bool(f["workdir"] or f["compile_only"]),
      message="--workdir is required (unless --compile_only)")
  flags.DEFINE_string("profile_steps", None, "Trainers: 'a:b' writes a jax.profiler trace of "
                      "steps a..b to <workdir>/profile (sets train.profile_steps).")


def run(main: Callable[[Args], int | None], *, resume: bool = False, uses_jax: bool = True,
        lock_name: Callable[[ml_collections.ConfigDict], str] = lambda config: "",
        compile_only: Callable[[ml_collections.ConfigDict], int] | None = None) -> NoReturn:
  """Runs `main` as the program (see the module docstring); never returns.

  `lock_name(config)` names the workdir's lock file when one workdir legitimately hosts several
  jobs at once (synthesis shards); "" is the one lock of the workdir. `compile_only(config)`, when
  given, is what `--compile_only` runs instead of `main` (no workdir, no lock): it compiles the
  job's program and returns the exit code.
  """
  define_flags(resume=resume, compile_only=compile_only is not None)

  def program(argv: list[str]) -> int:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if uses_jax:
      sharding_lib.maybe_initialize_distributed()  # Before anything touches jax devices.
    if not FLAGS["verbosity"].present:  # Keep orbax's INFO lines out of the progress output.
      absl_logging.set_verbosity(absl_logging.WARNING)
    if uses_jax:
      configure_runtime()
    if compile_only is not None and FLAGS.profile_steps is not None:
      if "train" not in FLAGS.config or "profile_steps" not in FLAGS.config.train:
        raise app.UsageError("--profile_steps is for the trainers (their train.profile_steps)")
      FLAGS.config.train.profile_steps = FLAGS.profile_steps
    if compile_only is not None and FLAGS.compile_only:
      return compile_only(FLAGS.config)
    try:
      with hold_workdir(FLAGS.workdir, lock_name(FLAGS.config), uses_jax=uses_jax):
        return main(Args(FLAGS.config, FLAGS.workdir, bool(resume and FLAGS.resume))) or 0
    except workdir_lock.WorkdirLocked as e:
      print(f"WorkdirLocked: {e}", file=sys.stderr, flush=True)
      return EXIT_WORKDIR_LOCKED

  app.run(lambda argv: sys.exit(program(argv)))
  raise AssertionError("app.run returned")  # pragma: no cover


@contextlib.contextmanager
def hold_workdir(workdir: str, lock_name: str = "", *, uses_jax: bool = True) -> Iterator[None]:
  """Holds `workdir`'s lock for the block; raises WorkdirLocked on every process if it is taken.

  In a multi-process JAX job process 0 takes the lock for the job and tells the others whether it
  got it (one broadcast), so all of them stop at once when another run holds it.
  """
  multi = uses_jax and jax.process_count() > 1
  lock = (workdir_lock.WorkdirLock(workdir, name=lock_name or workdir_lock.LOCK_NAME)
          if not multi or jax.process_index() == 0 else contextlib.nullcontext())
  error = ""
  try:
    lock.__enter__()
  except workdir_lock.WorkdirLocked as e:
    error = str(e)
  if multi:
    error = _broadcast_text(error)
  if error:
    raise workdir_lock.WorkdirLocked(error)
  try:
    yield
  finally:
    lock.__exit__(None, None, None)


def _broadcast_text(text: str, size: int = 2048) -> str:
  """Process 0's `text` (at most `size` UTF-8 bytes) on every process."""
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  buf = np.zeros(size, np.uint8)
  data = text.encode()[:size]
  buf[:len(data)] = np.frombuffer(data, np.uint8)
  out = np.asarray(multihost_utils.broadcast_one_to_all(buf))
  return bytes(out[out != 0]).decode("utf-8", "replace")


def configure_runtime() -> None:
  """A persistent compile cache (if VIIT_COMPILE_CACHE is set) and tf.data off any GPU."""
  cache = os.environ.get(COMPILE_CACHE_ENV)
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  if "tensorflow" in sys.modules:  # Jobs that never import TensorFlow do not pay for it here.
    sys.modules["tensorflow"].config.set_visible_devices([], "GPU")
  # seqio warns that uncached FunctionDataSources shuffle poorly across restarts; here the order is
  # a seeded function of the step and restarts skip to it, so the warning does not apply.
  logging.getLogger("absl").addFilter(
      lambda record: "uncached FunctionDataset" not in record.getMessage())


class SigtermFlag:
  """Becomes true when the process gets SIGTERM (a preemption notice, or a launcher stopping it).

  Bulk jobs check it between work units: they finish the unit in progress, write it, and stop
  with EXIT_PREEMPTED; a rerun resumes. Use as a context manager: the previous handler comes back
  on exit. Installs nothing outside the main thread (signals are delivered there only).
  """

  def __init__(self):
    self._set = False
    self._previous: Any = None

  def __enter__(self) -> "SigtermFlag":
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc: Any) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_sigterm(self, signum: int, frame: Any) -> None:
    del signum, frame
    self._set = True

  def __bool__(self) -> bool:
    return self._set


def process0_log(*args: Any, **kwargs: Any) -> None:
  """print() on process 0, nothing elsewhere (progress lines are written once per job)."""
  if jax.process_index() == 0:
    print(*args, **kwargs, flush=True)


def format_eta(seconds: float) -> str:
  """H:MM:SS, or '?' when unknown (no rate yet)."""
  if not math.isfinite(seconds):
    return "?"
  s = int(seconds)
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ------------------------------------------------------------------------------------------------
# Checkpoint sources and the model of a config or a checkpoint.


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
  """Where parameters come from: a trainer workdir's checkpoint (with its meta) or a .npz.

  Attributes:
    path: absolute path of the workdir or the .npz file.
    step: the checkpoint step (None for a .npz).
    meta: the checkpoint's meta ({"experiment", "variant", "config"}; {} for a .npz).
  """
  path: str
  step: int | None
  meta: Mapping[str, Any]

  def trained(self, section: str, key: str) -> Any:
    """`config.<section>.<key>` of the run that wrote the checkpoint, or None."""
    cfg = self.meta.get("config") or {}
    return (cfg.get(section) or {}).get(key)


def checkpoint_source(init_from: str, init_step: int) -> CheckpointSource:
  """Resolves the checkpoint step (-1: latest) and reads its meta, without writing anything."""
  if not init_from:
    raise ValueError("a checkpoint is required: a trainer workdir or a .npz of public weights")
  if init_from.endswith(".npz"):
    if not paths.path(init_from).is_file():
      raise FileNotFoundError(f"checkpoint {init_from!r} does not exist")
    return CheckpointSource(paths.name(init_from), None, {})
  directory = checkpoints.checkpoint_dir(init_from)
  if not paths.path(directory).is_dir():
    raise FileNotFoundError(f"checkpoint {init_from!r}: no checkpoint directory {directory}")
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True),
                                  item_handlers={"meta": ocp.JsonCheckpointHandler()})
  try:
    steps = sorted(manager.all_steps())
    if not steps:
      raise FileNotFoundError(f"checkpoint {init_from!r}: no committed checkpoint in {directory}")
    step = steps[-1] if init_step < 0 else init_step
    if step not in steps:
      raise FileNotFoundError(f"checkpoint {init_from!r}: no checkpoint at step {step} "
                              f"(have {steps})")
    meta = dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
                or {})
  finally:
    manager.close()
  return CheckpointSource(paths.name(init_from), int(step), meta)


def model_config(model: ml_collections.ConfigDict, want: type, *, num_frames: int, res: int,
                 text_len: int = 0, vocab_size: int = 0, source: CheckpointSource | None = None,
                 extra: Mapping[str, Any] | None = None) -> variants.ModelConfig:
  """The model config of `model.variant` fitted to the data, checked to be a `want`.

  Three uses:
  - a model to train (`source` None): the config's variant, vocab size, dtype, remat policy and
    layer layout (`model.scan`);
  - a model to compile for inference without a checkpoint (`source` None, no `model.remat_policy`:
    viit_jax.aot): the config's variant, vocab size and dtype, the variant's layout;
  - a trained model (`source` given; evaluation, auto-labeling): the config's variant, vocab size
    and dtype where set, else the checkpoint's; its recorded layer layout (scanned or not).
  The image tower sees `num_frames` frames of `res` px; the text side (the VLM's LM or the dual
  encoder's text tower) gets `text_len` as its default length when > 0. `vocab_size` > 0 is the
  tokenizer's size, which the model's vocabulary must cover. `extra` are further overrides
  (e.g. the dual encoder's temperature init).
  """
  trained = source.trained if source is not None else (lambda section, key: None)
  variant = model.variant or trained("model", "variant")
  where = source.path if source is not None else "the config"
  if not variant:
    raise ValueError(f"model.variant is not set and {where} records none (a .npz source needs "
                     "model.variant, model.vocab_size and data.res)")
  tower = "llm" if want is vlm_lib.VLMConfig else "txt"
  overrides: dict[str, Any] = {"img.image_size": int(res), "img.num_frames": int(num_frames)}
  if text_len:
    overrides[f"{tower}.seq_len"] = int(text_len)
  size = model.vocab_size or trained("model", "vocab_size") or 0
  if size:
    overrides[f"{tower}.vocab_size"] = int(size)
  dtype = model.dtype or trained("model", "dtype") or "float32"
  overrides.update({"img.dtype": dtype, f"{tower}.dtype": dtype})
  if source is None and "remat_policy" in model:  # A trainer's config.
    overrides.update({"img.remat_policy": model.remat_policy, f"{tower}.remat_policy":
                      model.remat_policy, "img.scan": model.scan, f"{tower}.scan": model.scan})
  elif trained("model", "scan") is not None:  # Imports keep the variant's layout.
    scan = bool(trained("model", "scan"))
    overrides.update({"img.scan": scan, f"{tower}.scan": scan})
  overrides.update(extra or {})
  cfg = variants.get_config(variant, overrides)
  if not isinstance(cfg, want):
    raise ValueError(f"model variant {variant!r} is a {type(cfg).__name__}, not a "
                     f"{want.__name__} (e.g. demo / test for a VLM, demo-de / test-de / "
                     "siglip-b16-video for a dual encoder)")
  have = cfg.llm.vocab_size if isinstance(cfg, vlm_lib.VLMConfig) else cfg.txt.vocab_size
  if vocab_size > have:
    raise ValueError(f"the tokenizer has {vocab_size} ids but model {variant} has vocab {have}; "
                     "set model.vocab_size")
  return cfg


MODEL_KINDS: dict[str, type] = {"vlm": vlm_lib.VLMConfig, "dual_encoder": de_lib.DualEncoderConfig}


def abstract_params(model_cfg: variants.ModelConfig, mesh: jax.sharding.Mesh,
                    param_dtype: str = "") -> Any:
  """ShapeDtypeStructs with shardings of the model's parameters on `mesh` (by their logical axes);
  floating leaves in `param_dtype` ('' = as initialised: float32)."""
  boxed = variants.abstract_params(model_cfg)
  shardings = sharding_lib.logical_to_shardings(boxed, mesh)

  def leaf(x, s):
    floating = param_dtype and jax.numpy.issubdtype(x.dtype, jax.numpy.floating)
    return jax.ShapeDtypeStruct(x.shape, jax.numpy.dtype(param_dtype) if floating else x.dtype,
                                sharding=s)

  return jax.tree.map(leaf, nn.unbox(boxed), shardings)


def load_params(model_cfg: variants.ModelConfig, source: CheckpointSource, mesh: jax.sharding.Mesh,
                assignment_map: checkpoints.AssignmentMap = (), param_dtype: str = "") -> Any:
  """The parameters (only) of `source`, restored straight into their shardings on `mesh` (cast to
  `param_dtype` when set: bfloat16 halves an inference job's weights); every parameter must come
  from the source."""
  abstract = abstract_params(model_cfg, mesh, param_dtype)
  params, report = checkpoints.load_params_into(abstract, source.path, step=source.step or -1,
                                                assignment_map=assignment_map)
  if report.kept:
    raise ValueError(f"{source.path} does not provide {len(report.kept)} parameters "
                     f"(e.g. {list(report.kept[:5])}); a trained model must be complete")
  print(report.summary(), flush=True)
  return params
