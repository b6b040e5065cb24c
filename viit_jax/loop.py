"""The training loop every trainer shares (VLM phases 0-2 in train.py, the dual encoder later).

A trainer brings a `Task`: how to initialise parameters, the loss, a data iterator that starts at any
step, and optional eval hooks. `run` does the rest:

  workdir guard (config.json) -> optimizer from config.optim -> abstract init (jax.eval_shape) ->
  shardings from the params' logical axes -> restore_or_init (own checkpoint > init_from > scratch),
  straight into the shardings -> AOT-compiled train step (memory report per device) -> the step loop:
  host-local batches -> global arrays -> step -> NaN/Inf guard -> metrics (TensorBoard + JSONL +
  progress line) -> async checkpoints every N steps -> eval hooks -> final checkpoint.

Step semantics: `state["step"]` counts the updates applied. The checkpoint at step s holds the state
after s updates and data position s: the next batch is the data iterator's batch number s, so a
resumed run sees exactly the batches an uninterrupted one would (data order is a function of the step).

Loss contract: `loss_fn(params, batch, rng) -> (loss_sum f32[], weight f32[], metric_sums)`; the
reported loss is sum(loss_sum) / sum(weight) over the micro-batches of a step, and each metric sum is
divided by the same total weight. With gradient accumulation the gradient is that of the same ratio,
so 4 micro-batches give the gradient of the one large batch.

Frozen parameters (config.optim.freeze) are passed to the loss as non-differentiated inputs and are
absent from the optimizer state: they cost no gradient computation and no optimizer memory.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import traverse_util
from jax.experimental import multihost_utils
from orbax.checkpoint import multihost as ocp_multihost

from viit_jax import checkpoints
from viit_jax import config_lib
from viit_jax import flops as flops_lib
from viit_jax import metric_writer
from viit_jax import op_profile
from viit_jax import optim
from viit_jax import paths
from viit_jax import runtime
from viit_jax import sharding as sharding_lib

Params = Any  # Nested dict of arrays.
Batch = Mapping[str, Any]  # One batch: every leaf has the batch dimension first.
State = dict[str, Any]  # {"step": int32[], "params": Params, "opt": optax state}

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
MEMORY_FILE = "memory.json"


class LossFn(Protocol):
  def __call__(self, params: Params, batch: Batch, rng: jax.Array
               ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """(loss_sum f32[], weight f32[], {name: metric sum f32[]}) of one (micro-)batch."""


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """What an eval hook reports: scalars (TensorBoard + JSONL) and texts (e.g. decoded samples)."""
  scalars: Mapping[str, float]
  texts: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Task:
  """What a trainer provides to `run`.

  Attributes:
    init_fn: rng -> params (may carry flax logical-partitioning boxes); traced under jit, never
      run eagerly, so it can be as large as the model.
    loss_fn: see `LossFn`; traced once inside the jitted step.
    data_fn: first step s -> iterator over the *host-local* rows of global batches s, s+1, ...
      (numpy; leading dim = global batch / process count). Must be a pure function of s (and the
      config): that is what makes resume exact.
    batch_spec: global shape and dtype of each batch leaf (for AOT compilation).
    eval_fn: (params, step) -> EvalResult, run every `train.eval_every` steps and at the end.
    model_cfg: the model trained, for the analytic FLOPs of the MFU figure (None: no MFU).
  """
  init_fn: Callable[[jax.Array], Params]
  loss_fn: LossFn
  data_fn: Callable[[int], Iterator[Batch]]
  batch_spec: Mapping[str, jax.ShapeDtypeStruct]
  eval_fn: Callable[[Params, int], EvalResult] | None = None
  model_cfg: Any = None


@dataclasses.dataclass
class RunResult:
  """What `run` returns: the final state (on device), its step, and the last logged metrics."""
  state: State
  step: int
  metrics: dict[str, float]
  memory: dict[str, float]
  source: str


class NonFiniteLossError(RuntimeError):
  """The loss, the gradient norm or the updated parameters became NaN/Inf; the run stopped
  without saving that state."""


class PreemptedError(RuntimeError):
  """SIGTERM: the state of an agreed step was saved and the run stopped; rerun to resume."""


class WorkdirMismatchError(RuntimeError):
  """The workdir holds another experiment's config and `force` was not given."""


# ------------------------------------------------------------------------------------------------
# Workdir guard.


def check_workdir(workdir: str, config: ml_collections.ConfigDict, *, force: bool) -> None:
  """Refuses a workdir created with another config (unless `force`), then records this config.

  The record is `<workdir>/config.json`. An identical config (a restart of the same command) is
  always accepted; a different one only with `force` (the user's `--resume`), and is then recorded.
  """
  path = paths.path(workdir) / CONFIG_FILE
  current = config_lib.to_plain(config)
  if path.exists():
    previous = paths.read_json(path)
    changes = config_lib.diff(previous, current)
    if changes and not force:
      raise WorkdirMismatchError(
          f"Workdir {workdir} holds experiment {previous.get('experiment')!r} with another config "
          f"({len(changes)} differences: {'; '.join(changes[:8])}). Use another --workdir, or pass "
          "--resume to continue it with this config.")
    if not changes:
      return
  if jax.process_index() == 0:
    paths.write_text(path, config_lib.to_json(config))


# ------------------------------------------------------------------------------------------------
# Multi-process alignment.

# How long a process waits at a barrier for the others: it must cover the spread of their
# per-process work before it (compilation, which a compile-cache hit can make much shorter on some
# processes than on others, and the first batch). 30 min, as XLA's CPU collective timeout
# (--xla_cpu_collective_timeout_seconds), so a peer that hangs while alive stops the job within
# 30 min either way; a dead peer ends the job far sooner, through the heartbeat timeout
# (sharding.py, "Peer failure").
BARRIER_TIMEOUT_S = 1800


def sync_processes(name: str, timeout_s: int = BARRIER_TIMEOUT_S) -> None:
  """Blocks until every process reaches barrier `name` (unique per use); no-op with one process.

  A coordination-service barrier, not a collective: call it after per-process work of uneven
  length (compilation, the first batch) and before the first collective of a program. CPU gloo
  collectives give up if a peer is more than 30 s late for their first rendezvous.
  """
  if jax.process_count() > 1:
    ocp_multihost.get_barrier_sync_fn()(key=name, timeout_ms=timeout_s * 1000)


class PreemptionNotice:
  """Whether the job was asked to stop (SIGTERM, a preemption notice) at a step all processes share.

  Several processes: JAX's preemption service. The coordination service learns of a SIGTERM to any
  process, and `reached_preemption_sync_point(step)` becomes True on every process at the same step
  (one past the furthest step any of them had reached), so all save the same step. One process: a
  SIGTERM handler sets a flag that the next step sees. `reached` must be called at every step.
  """

  def __init__(self):
    self._multi = jax.process_count() > 1
    self._sigterm = runtime.SigtermFlag()
    if not self._multi:  # With several, JAX's own handler must keep SIGTERM.
      self._sigterm.__enter__()

  def reached(self, step: int) -> bool:
    if self._multi:
      return multihost_utils.reached_preemption_sync_point(step)
    return bool(self._sigterm)

  def close(self) -> None:
    self._sigterm.__exit__()


# ------------------------------------------------------------------------------------------------
# Optimizer-state shardings.


def opt_state_shardings(abstract_opt: Any, abstract_params: Params,
                        mesh: jax.sharding.Mesh) -> Any:
  """Shardings of an optimizer state that follow the shardings of the parameters it tracks.

  An optax state leaf whose path ends with a parameter's path takes that parameter's sharding if
  it has the parameter's shape (moments), or the parameter's spec without one dimension if it
  has one dimension fewer (Adafactor's factored row/column statistics). Everything else
  (counts, placeholders) is replicated.
  """
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  params = {k: v for k, v in traverse_util.flatten_dict(abstract_params).items()}

  def one(path, leaf):
    keys = tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey))
    for i in range(len(keys)):
      if keys[i:] in params:
        param = params[keys[i:]]
        break
    else:
      return replicated
    shape, leaf_shape = tuple(param.shape), tuple(leaf.shape)
    spec = tuple(param.sharding.spec) + (None,) * (len(shape) - len(param.sharding.spec))
    if leaf_shape == shape:
      return param.sharding
    if len(leaf_shape) == len(shape) - 1:
      for d in range(len(shape)):
        if shape[:d] + shape[d + 1:] == leaf_shape:
          return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
              *(spec[:d] + spec[d + 1:])))
    return replicated

  return jax.tree_util.tree_map_with_path(one, abstract_opt)


# ------------------------------------------------------------------------------------------------
# The step (a pure module-level function; `run` jits it once with explicit shardings).


def _tree_add(a: Any, b: Any) -> Any:
  return jax.tree.map(jnp.add, a, b)


def _loss_and_grads(loss_fn: LossFn, trainable: Params, frozen: Params, batch: Batch,
                    rng: jax.Array) -> tuple[jax.Array, jax.Array, dict[str, jax.Array], Params]:
  """(loss_sum, weight, metric sums, d loss_sum / d trainable) of one micro-batch."""

  def f(t):
    loss_sum, weight, metrics = loss_fn(optim.merge_params(t, frozen), batch, rng)
    return loss_sum.astype(jnp.float32), (weight.astype(jnp.float32), metrics)

  (loss_sum, (weight, metrics)), grads = jax.value_and_grad(f, has_aux=True)(trainable)
  return loss_sum, weight, metrics, grads


def train_step(state: State, batch: Batch, *, loss_fn: LossFn, tx: optax.GradientTransformation,
               schedule: optax.Schedule, freeze: str, micro_batches: int, seed: int,
               batch_constraint: Callable[[Batch], Batch]) -> tuple[State, dict[str, jax.Array]]:
  """One update on a global batch (split into `micro_batches` accumulated passes).

  Args:
    state: {"step": int32[], "params", "opt"}; donated.
    batch: global arrays, leading dim B (divisible by micro_batches).
    batch_constraint: re-imposes the batch sharding on one micro-batch.

  Returns:
    (new state, metrics {"loss", "grad_norm", "param_norm", "lr", ...} f32[] replicated).
  """
  trainable, frozen = optim.split_params(state["params"], freeze)
  frozen = jax.lax.stop_gradient(frozen)
  rng = jax.random.fold_in(jax.random.PRNGKey(seed), state["step"])
  if micro_batches == 1:
    loss_sum, weight, metrics, grads = _loss_and_grads(loss_fn, trainable, frozen, batch, rng)
  else:
    def split(x):  # [B, ...] -> [M, B / M, ...]; micro-batch i holds rows i, M + i, 2M + i, ...
      x = x.reshape((x.shape[0] // micro_batches, micro_batches) + x.shape[1:])
      return jnp.swapaxes(x, 0, 1)

    micro = jax.tree.map(split, batch)

    def body(carry, inputs):
      mb, i = inputs
      out = _loss_and_grads(loss_fn, trainable, frozen, batch_constraint(mb),
                            jax.random.fold_in(rng, i))
      return _tree_add(carry, out), None

    zero = jax.eval_shape(
        lambda: _loss_and_grads(loss_fn, trainable, frozen, jax.tree.map(lambda x: x[0], micro),
                                rng))
    zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zero)
    (loss_sum, weight, metrics, grads), _ = jax.lax.scan(
        body, zero, (micro, jnp.arange(micro_batches)))
  grads = jax.tree.map(lambda g: g / weight, grads)
  updates, opt = tx.update(grads, state["opt"], trainable)
  trainable = optax.apply_updates(trainable, updates)
  new_state = {"step": state["step"] + 1, "params": optim.merge_params(trainable, frozen),
               "opt": opt}
  out = {"loss": loss_sum / weight, "grad_norm": optax.tree.norm(grads),
         "param_norm": optax.tree.norm(trainable), "lr": schedule(state["step"]),
         **{k: v / weight for k, v in metrics.items()}}
  return new_state, out


# ------------------------------------------------------------------------------------------------
# Memory report.


def memory_report(compiled: Any) -> dict[str, float]:
  """Per-device memory of a compiled SPMD program in MiB (XLA's memory_analysis)."""
  ma = compiled.memory_analysis()
  if ma is None:
    return {}
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
            "alias_size_in_bytes", "generated_code_size_in_bytes")
  mib = {f.replace("_size_in_bytes", "_mib"): getattr(ma, f, 0) / 2**20 for f in fields}
  mib["peak_estimate_mib"] = (mib["argument_mib"] + mib["output_mib"] + mib["temp_mib"]
                              - mib["alias_mib"])
  return mib


def _format_memory(mib: Mapping[str, float]) -> str:
  if not mib:
    return "memory analysis unavailable on this backend"
  return ("compiled train step, per device: "
          f"arguments {mib['argument_mib']:.1f} MiB, outputs {mib['output_mib']:.1f} MiB, "
          f"temporaries {mib['temp_mib']:.1f} MiB, aliased (donated) {mib['alias_mib']:.1f} MiB, "
          f"code {mib['generated_code_mib']:.1f} MiB; peak estimate "
          f"{mib['peak_estimate_mib']:.1f} MiB")


# ------------------------------------------------------------------------------------------------
# Profiling.


class Profile:
  """`train.profile_steps` "a:b": a `jax.profiler` trace of steps a to b (inclusive) written to
  `directory` (<workdir>/profile; TensorBoard's profile plugin reads it), then the slowest ops of
  the program `hlo_text` returns (viit_jax.op_profile) in the log. "" = none."""

  def __init__(self, spec: str, directory: str, log: Callable[[str], None]):
    self.first = self.last = 0
    if spec:
      try:
        self.first, self.last = (int(x) for x in spec.split(":"))
      except ValueError:
        raise ValueError(f"train.profile_steps must be 'a:b' (first and last step), got {spec!r}")
      if not 0 < self.first <= self.last:
        raise ValueError(f"train.profile_steps {spec!r}: need 0 < a <= b")
    self.directory, self.log, self.active = directory, log, False
    self.hlo_text: Callable[[], str] | None = None  # The traced program's HLO (set once compiled).
    self._t0 = 0.0

  def before(self, step: int) -> None:
    if self.first and step == self.first:
      jax.profiler.start_trace(self.directory)
      self.active, self._t0 = True, time.perf_counter()

  def after(self, step: int, metrics: Any) -> None:
    if self.active and step == self.last:
      jax.block_until_ready(metrics)
      steps = self.last - self.first + 1
      step_seconds = (time.perf_counter() - self._t0) / steps
      self.close()
      self.log(f"profile of steps {self.first}-{self.last} written to {self.directory}")
      if self.hlo_text is not None:
        rows = op_profile.read(self.directory, self.hlo_text(), steps)
        self.log(op_profile.format_top(rows, step_seconds))

  def close(self) -> None:
    if self.active:
      jax.profiler.stop_trace()
      self.active = False


# ------------------------------------------------------------------------------------------------
# The loop.


def _host_metrics(metrics: Mapping[str, jax.Array]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}


@dataclasses.dataclass(frozen=True)
class StateSpec:
  """The train state's structure under a config and mesh, without allocating it.

  Attributes:
    abstract_state: ShapeDtypeStructs with shardings of {"step", "params", "opt"}; the restore
      target of this run's checkpoints (on this mesh, whatever mesh wrote them).
    shardings: NamedShardings of the same tree.
    tx, schedule: the optimizer and its LR schedule.
    trainable, frozen: parameter paths per `config.optim.freeze`.
  """
  abstract_state: State
  shardings: State
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  trainable: tuple[str, ...]
  frozen: tuple[str, ...]


def state_spec(task: Task, config: ml_collections.ConfigDict,
               mesh: jax.sharding.Mesh) -> StateSpec:
  """Abstract state and shardings: params from their logical axes, optimizer state following
  the params (only the trainable ones), step replicated."""
  tx, schedule = optim.make_optimizer(config.optim, int(config.train.total_steps))
  boxed = jax.eval_shape(task.init_fn, jax.random.PRNGKey(config.seed))
  param_shardings = sharding_lib.logical_to_shardings(boxed, mesh, sharding_lib.RULES)
  abstract_params = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), nn.unbox(boxed),
      param_shardings)
  trainable, frozen = optim.trainable_names(abstract_params, config.optim.freeze)
  abstract_trainable, _ = optim.split_params(abstract_params, config.optim.freeze)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abstract_opt = jax.eval_shape(tx.init, abstract_trainable)
  opt_shardings = opt_state_shardings(abstract_opt, abstract_trainable, mesh)
  shardings = {"step": replicated, "params": param_shardings, "opt": opt_shardings}
  abstract_state = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
      {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract_params,
       "opt": abstract_opt}, shardings)
  return StateSpec(abstract_state, shardings, tx, schedule, tuple(trainable), tuple(frozen))


def fresh_state_fn(task: Task, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                   spec: StateSpec) -> tuple[Callable[[], Any], Callable[[Any], State]]:
  """(fresh_params() -> sharded initial params, make_state(params) -> sharded step-0 state)."""
  def fresh_params():
    params, _ = sharding_lib.init_sharded(task.init_fn, mesh, sharding_lib.RULES,
                                          jax.random.PRNGKey(config.seed))
    return params

  def state_of(params):
    trainable, _ = optim.split_params(params, config.optim.freeze)
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": spec.tx.init(trainable)}

  def make_state(params):
    return jax.jit(state_of, in_shardings=(spec.shardings["params"],),
                   out_shardings=spec.shardings, donate_argnums=(0,))(params)

  return fresh_params, make_state


def compile_step(task: Task, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                 spec: StateSpec) -> jax.stages.Compiled:
  """The train step, compiled ahead of time: explicit shardings, donated state,
  (state, batch) -> (state, metrics)."""
  return lower_step(task, config, mesh, spec).compile()


def lower_step(task: Task, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
               spec: StateSpec, traced: jax.stages.Traced | None = None) -> jax.stages.Lowered:
  """The train step of `compile_step`, lowered with abstract arguments (not yet compiled); from
  `traced` (`trace_step`'s result) when the caller has traced it already."""
  if traced is None:
    traced = trace_step(task, config, mesh, spec)
  with sharding_lib.use_mesh(mesh, sharding_lib.RULES):
    return traced.lower()


def trace_step(task: Task, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
               spec: StateSpec) -> jax.stages.Traced:
  """The train step of `compile_step`, traced with abstract arguments (its jaxpr; `.lower()`)."""
  rules = sharding_lib.RULES
  batch_sharding = jax.sharding.NamedSharding(mesh, sharding_lib.batch_spec(rules))
  batch_shardings = {k: batch_sharding for k in task.batch_spec}
  step_fn = functools.partial(
      train_step, loss_fn=task.loss_fn, tx=spec.tx, schedule=spec.schedule,
      freeze=config.optim.freeze, micro_batches=int(config.train.micro_batches),
      seed=int(config.seed),
      batch_constraint=lambda b: jax.tree.map(
          lambda x: jax.lax.with_sharding_constraint(x, batch_sharding), b))
  jitted = jax.jit(step_fn, in_shardings=(spec.shardings, batch_shardings),
                   out_shardings=(spec.shardings, spec.shardings["step"]), donate_argnums=(0,))
  abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_shardings[k])
                    for k, v in task.batch_spec.items()}
  with sharding_lib.use_mesh(mesh, rules):
    return jitted.trace(spec.abstract_state, abstract_batch)


def run(task: Task, config: ml_collections.ConfigDict, workdir: str, *,
        mesh: jax.sharding.Mesh, force: bool = False,
        log: Callable[[str], None] = print) -> RunResult:
  """Trains `task` per `config` (sections train, optim, init_*) in `workdir`. See module docstring.

  Raises:
    WorkdirMismatchError: `workdir` holds another experiment's config and not `force`.
    NonFiniteLossError: NaN/Inf loss, gradient or updated parameters; that step is not saved.
  """
  workdir = paths.name(workdir)
  tc = config.train
  total = int(tc.total_steps)
  if tc.batch_size % tc.micro_batches:
    raise ValueError(f"train.batch_size {tc.batch_size} is not divisible by train.micro_batches "
                     f"{tc.micro_batches}")
  check_workdir(workdir, config, force=force)
  profile = Profile(str(tc.profile_steps), paths.name(paths.path(workdir) / "profile"), log)
  spec = state_spec(task, config, mesh)
  rules, abstract_state = sharding_lib.RULES, spec.abstract_state
  log(f"params: {optim.tree_size(abstract_state['params']):,} ({len(spec.trainable)} trainable "
      f"arrays, {len(spec.frozen)} frozen by {config.optim.freeze!r}); optimizer state "
      f"{optim.tree_size(abstract_state['opt']):,} elements")

  fresh_params, make_state = fresh_state_fn(task, config, mesh, spec)
  ckpt = checkpoints.Checkpointer(workdir, save_every=int(tc.checkpoint_every),
                                  keep=int(tc.keep_checkpoints), async_save=tc.async_checkpoints)
  if config.init_required and not config.init_from and ckpt.latest_step() is None:
    ckpt.close()
    raise ValueError(f"Experiment {config.experiment} needs init_from (a previous phase's workdir "
                     "or a .npz of public weights); pass init_from=... in the config argument")
  state, data_position, source = checkpoints.restore_or_init(
      ckpt, abstract_state, fresh_params, make_state, init_from=config.init_from,
      assignment_map=tuple(tuple(r) for r in config.init_assignment_map),
      init_step=config.init_step)
  start = int(jax.device_get(state["step"]))
  log(f"state: {source}; starting at step {start} of {total}")
  if data_position and int(data_position["step"]) != start:
    raise RuntimeError(f"Checkpoint data position {data_position} does not match its step {start}")
  if data_position and int(data_position["batch_size"]) != int(tc.batch_size):
    log(f"WARNING: the checkpoint was trained with batch size {data_position['batch_size']}, this "
        f"run uses {tc.batch_size}: batches from step {start} on differ from the original run's")

  t0 = time.time()
  compiled = compile_step(task, config, mesh, spec)
  profile.hlo_text = compiled.as_text
  memory = memory_report(compiled)
  log(f"compiled train step in {time.time() - t0:.1f}s; {_format_memory(memory)}")
  writer = metric_writer.MetricWriter(workdir, METRICS_FILE)
  if jax.process_index() == 0:
    paths.write_json(paths.path(workdir) / MEMORY_FILE, memory)
  step_flops, peak = 0.0, 0.0
  if task.model_cfg is not None:
    step_flops = flops_lib.analytic_step_flops(task.model_cfg, int(tc.batch_size), spec.trainable,
                                               str(config.model.remat_policy)).model
    peak, peak_source = flops_lib.devices_peak(config.model.dtype, float(tc.peak_tflops))
    log(f"model FLOPs per step {step_flops:.3e} (analytic); peak {peak / 1e12:.2f} TFLOP/s "
        f"({peak_source})")

  meta = {"experiment": config.experiment, "variant": config.model.variant,
          "config": config_lib.to_plain(config)}

  def data_pos(step):
    return {"step": step, "seed": int(config.seed), "batch_size": int(tc.batch_size)}

  def run_eval(step):
    if task.eval_fn is None:
      return
    t = time.time()
    result = task.eval_fn(state["params"], step)
    scalars = {f"eval/{k}": v for k, v in result.scalars.items()}
    writer.write(step, scalars, {f"eval/{k}": v for k, v in result.texts.items()})
    log(f"eval at step {step} ({time.time() - t:.1f}s): "
        + ", ".join(f"{k} {v:.4f}" for k, v in scalars.items()))
    for k, v in result.texts.items():
      log(f"  {k}: {v}")

  def check(step, metrics):
    host = _host_metrics(metrics)
    bad = {k: host[k] for k in ("loss", "grad_norm", "param_norm") if not math.isfinite(host[k])}
    if bad:
      ckpt.wait()
      last = ckpt.latest_step()
      ckpt.close()
      writer.close()
      raise NonFiniteLossError(
          f"Non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}; stopping "
          f"without saving this state. Last good checkpoint: "
          f"{'none' if last is None else f'step {last}'} in {ckpt.directory}")
    return host

  pending: tuple[int, Any] | None = None
  window: list[dict[str, float]] = []
  last_metrics: dict[str, float] = {}
  t_start = time.time()
  notice = PreemptionNotice()
  try:
    if tc.eval_at_start and start < total:
      run_eval(start)
    data_iter = task.data_fn(start)
    t_window, steps_window = time.time(), 0
    for step in range(start + 1, total + 1):
      host_batch = next(data_iter)
      if step == start + 1:  # Compiled and holding a batch: start the collectives together.
        sync_processes(f"viit_loop/first_step/{step}")
      batch = sharding_lib.host_local_to_global(dict(host_batch), mesh, rules)
      profile.before(step)
      state, metrics = compiled(state, batch)
      profile.after(step, metrics)
      if pending is not None:  # Check the previous step while this one runs.
        window.append(check(*pending))
      pending = (step, metrics)
      steps_window += 1
      final = step == total
      preempted = notice.reached(step)
      save_now = final or preempted or step % tc.checkpoint_every == 0
      log_now = final or preempted or step % tc.log_every == 0
      eval_now = not preempted and (final or (tc.eval_every > 0 and step % tc.eval_every == 0))
      if save_now or log_now or eval_now:
        window.append(check(*pending))
        pending = None
      if log_now:
        dt = time.time() - t_window
        mean = {k: float(np.mean([w[k] for w in window])) for k in window[-1]}
        steps_s = steps_window / dt
        ex_s = steps_s * tc.batch_size
        mfu = step_flops * steps_s / peak if peak else math.nan
        scalars = {**{f"train/{k}": v for k, v in mean.items()}, "train/steps_per_s": steps_s,
                   "train/examples_per_s": ex_s, **({"train/mfu": mfu} if peak else {})}
        writer.write(step, scalars)
        last_metrics = scalars
        log(f"step {step}/{total} | loss {mean['loss']:.4f} | lr {mean['lr']:.2e} | "
            f"{ex_s:.1f} ex/s | {steps_s:.2f} steps/s | "
            + (f"MFU {100 * mfu:.1f}% | " if peak else "") +
            f"ETA {runtime.format_eta((total - step) / steps_s if steps_s > 0 else math.inf)}")
        window, steps_window, t_window = [], 0, time.time()
      if save_now:
        ckpt.maybe_save(step, state, data=data_pos(step), meta=meta, force=final or preempted)
      if preempted:
        raise PreemptedError(f"preempted (SIGTERM): saved step {step} of {total} in "
                             f"{ckpt.directory}; rerun the same command to resume")
      if eval_now:
        t_eval = time.time()
        run_eval(step)
        t_window += time.time() - t_eval  # Throughput counts training steps only.
    if pending is not None:
      check(*pending)
    if start >= total:
      log(f"nothing to do: the state is at step {start}, train.total_steps is {total}")
  except NonFiniteLossError:
    raise
  except BaseException:  # PreemptedError included: close() waits for the save to commit.
    ckpt.close()
    writer.close()
    raise
  finally:
    notice.close()
    profile.close()
  ckpt.close()
  writer.close()
  log(f"done: step {total} in {time.time() - t_start:.1f}s")
  return RunResult(state=state, step=total, metrics=last_metrics, memory=memory, source=source)


# ------------------------------------------------------------------------------------------------
# The trainers' main().

def train(config: ml_collections.ConfigDict, workdir: str,
          build_task: Callable[[ml_collections.ConfigDict, jax.sharding.Mesh], Task], *,
          force: bool = False, log: Callable[[str], None] = print, describe: str = ""
          ) -> RunResult:
  """Builds the config's mesh and the trainer's task on it, then `run`s it."""
  mesh = sharding_lib.make_mesh(dict(config.mesh))
  log(f"experiment {config.experiment}: {jax.process_count()} process(es), "
      f"{jax.device_count()} devices, mesh {dict(mesh.shape)}{describe}")
  return run(build_task(config, mesh), config, workdir, mesh=mesh, force=force, log=log)


def main(args: runtime.Args,
         build_task: Callable[[ml_collections.ConfigDict, jax.sharding.Mesh], Task], *,
         describe: str = "") -> int:
  """A trainer's main(): `train`, then the exit code: 0, or runtime.EXIT_WORKDIR_MISMATCH,
  EXIT_NON_FINITE (the last good checkpoint kept), EXIT_SAVE_FAILED (the committed checkpoints
  intact) or EXIT_PREEMPTED (the agreed step saved)."""
  try:
    result = train(args.config, args.workdir, build_task, force=args.resume,
                   log=runtime.process0_log, describe=describe)
  except NonFiniteLossError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return runtime.EXIT_NON_FINITE
  except WorkdirMismatchError as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return runtime.EXIT_WORKDIR_MISMATCH
  except checkpoints.SaveFailed as e:
    print(f"ERROR: {e}", file=sys.stderr, flush=True)
    return runtime.EXIT_SAVE_FAILED
  except PreemptedError as e:
    print(f"process {jax.process_index()}: {e}", file=sys.stderr, flush=True)
    return runtime.EXIT_PREEMPTED
  runtime.process0_log(f"final metrics: {json.dumps(result.metrics)}")
  return 0
