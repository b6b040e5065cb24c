"""The demo pipeline's phases: their names, the command each runs, and where their outputs are.

`plan(config, workdir)` lists every phase of `python -m viit_jax.pipeline` in order; the pipeline
runs them, the demo report and the caption-ceiling probe read their outputs by these names:

  world            python -m data.demo_world                    the demo world (seeded)
  image_clip       python -m viit_jax.train_dual_encoder        image CLIP on the stills (T=1), the
                                                                 dual encoders' start (the paper's)
  phase0           python -m viit_jax.train (demo_phase0)       image-text pre-training (T=1)
  phase1           python -m viit_jax.train (demo_phase1)       visual adaptation (LM frozen)
  viit_data        python -m viit_jax.synthesize                instruction synthesis (VidLN)
  phase2           python -m viit_jax.train (demo_phase2)       VIIT (vision frozen)
  label_viit       python -m viit_jax.autolabel (mode=viit)     pool captions, phase-2 VLM
  label_frames     python -m viit_jax.autolabel (frame_captioner) baseline: phase-0 image model, T=1
  de_alt_text      python -m viit_jax.train_dual_encoder        dual encoder on the pool's alt-text
  de_frames                                                      ... on frame captions
  de_viit                                                        ... on VIIT captions
  eval_image       python -m viit_jax.evaluate                  phase 0 with 8 frames, not adapted
  eval_phase1, eval_phase2                                       the adapted VLMs
  eval_de_alt_text, eval_de_frames, eval_de_viit                 1k-A-style retrieval
  filter_viit      python -m viit_jax.filter_captions           VIIT captions de_viit agrees with
  de_viit_filtered python -m viit_jax.train_dual_encoder        dual encoder on the filtered ones
  eval_de_viit_filtered python -m viit_jax.evaluate             (beyond the paper; filter.top_k=0
                                                                 and min_score=-1 leave them out)
  report           python -m viit_jax.demo.report               report.md/.html, claims.json

Each phase writes into `<workdir>/<phase>/` and leaves `<workdir>/<phase>/DONE.json` (command,
wall and CPU seconds) when its child exits 0. Each phase names the phases whose outputs it reads
(`Phase.needs`); `run_phases` runs a list of phases, each once those it needs are done, up to `jobs`
at a time (the pipeline's `jobs`); `run_phase` runs one (the caption-ceiling probe uses it).
"""
from __future__ import annotations

import ctypes
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections

from configs import dual_encoder_demo

MARKER = "DONE.json"
TIMINGS_FILE = "timings.json"
CONFIG_FILE = "pipeline_config.json"
LOG_DIR = "logs"

# The workdir layout (viit_jax/demo/report.py reads it).
WORLD = "world"
IMAGE_CLIP = "image_clip"
VLM_TRAIN = ("phase0", "phase1", "phase2")
VIIT_DATA = "viit_data"
LABEL_VIIT, LABEL_FRAMES = "label_viit", "label_frames"
# Caption source name (configs/dual_encoder_demo.py) -> dual-encoder phase.
DUAL_ENCODERS = {"alt_text": "de_alt_text", "frame_captions": "de_frames", "viit": "de_viit"}
# Evaluated VLMs: eval phase -> (trained phase, what the paper's Table 3 calls it).
VLM_EVALS = {"eval_image": ("phase0", "image model, 8 frames, not adapted"),
             "eval_phase1": ("phase1", "phase 1: visual adaptation"),
             "eval_phase2": ("phase2", "phase 2: + VIIT (full method)")}
DE_EVALS = {f"eval_{de}": de for de in DUAL_ENCODERS.values()}
# Caption filtering (beyond the paper): de_viit scores the VIIT captions, the kept ones train
# another dual encoder from the same start.
FILTER_VIIT, DE_FILTERED = "filter_viit", "de_viit_filtered"
EVAL_DE_FILTERED = f"eval_{DE_FILTERED}"
REPO = pathlib.Path(__file__).resolve().parents[2]
REPORT = "report"


@dataclasses.dataclass(frozen=True)
class Phase:
  """One step of the pipeline.

  Attributes:
    name: its directory under the workdir (outputs and the DONE.json marker).
    what: one line for the progress output and the timing table.
    argv: the child command (argv[0] is the Python interpreter).
    needs: the phases whose outputs it reads; it starts once they are done.
  """
  name: str
  what: str
  argv: tuple[str, ...]
  needs: tuple[str, ...] = ()


def join_args(*parts: str | Mapping[str, Any]) -> str:
  """`key=value` config arguments: mappings are rendered (str values quoted if they hold a comma),
  strings are appended verbatim; empty parts are dropped."""
  out: list[str] = []
  for part in parts:
    if isinstance(part, Mapping):
      for k, v in part.items():
        v = str(v)
        if "," in v and v[:1] not in "'\"([":  # Literals in brackets need no quotes.
          v = f"'{v}'"
        out.append(f"{k}={v}")
    elif part:
      out.append(part)
  return ",".join(out)


def world_dir(config: Mapping[str, Any], workdir: str | os.PathLike[str]) -> pathlib.Path:
  """The world a run uses: `world.dir` when the config names one, else <workdir>/world.
  `config` is the pipeline config (or its pipeline_config.json as a dict)."""
  given = config.get("world", {}).get("dir")
  return pathlib.Path(given).resolve() if given else pathlib.Path(workdir).resolve() / WORLD


def plan(config: ml_collections.ConfigDict, workdir: str | os.PathLike[str]) -> list[Phase]:
  """Every phase of the pipeline, in order, with its command (see the module docstring)."""
  w = pathlib.Path(workdir).resolve()
  py = config.python or sys.executable
  world = str(world_dir(config, w))
  seed = int(config.seed)

  def entry(module: str, cfg_file: str, args: str, name: str) -> tuple[str, ...]:
    cfg_file = str(REPO / cfg_file)  # Any working directory.
    return (py, "-m", module, f"--config={cfg_file}:{args}" if args else f"--config={cfg_file}",
            f"--workdir={w / name}")

  phases: list[Phase] = []
  # Every phase reads the world; a given world directory is no phase.
  world_phase = () if config.world.dir else (WORLD,)
  if not config.world.dir:
    phases.append(Phase(WORLD, f"demo world (preset {config.world.preset}, seed {seed})",
                        (py, "-m", "data.demo_world", f"--out={world}",
                         f"--preset={config.world.preset}", f"--seed={seed}")))

  clip = config.image_clip
  if clip.steps > 0:
    fields = {"caption_source": "stills", "data.num_frames": 1, "init_from": "",
              "init_required": "false", "data.world_dir": world, "seed": seed,
              "train.total_steps": clip.steps, "train.batch_size": clip.batch_size}
    phases.append(Phase(IMAGE_CLIP, "image CLIP on the stills' captions (T=1)",
                        entry("viit_jax.train_dual_encoder", "configs/dual_encoder_demo.py",
                              join_args(fields, clip.args), IMAGE_CLIP), world_phase))

  init = {"phase0": "", "phase1": "phase0", "phase2": "phase1"}  # The phase each starts from.
  whats = {"phase0": "phase 0: image-text pre-training on stills (T=1)",
           "phase1": "phase 1: visual adaptation on S-MiT captions (LM frozen)",
           "phase2": "phase 2: VIIT on synthesized instructions (vision frozen)"}
  for name in VLM_TRAIN:
    p = config[name]
    fields = {"data.world_dir": world, "seed": seed, "train.total_steps": p.steps,
              "train.batch_size": p.batch_size}
    if init[name]:
      fields["init_from"] = str(w / init[name])
    if name == "phase2":
      fields["data.viit_dir"] = str(w / VIIT_DATA)
    needs = world_phase + ((init[name],) if init[name] else ())
    if name == "phase2":  # The instruction data comes before phase 2.
      phases.append(Phase(VIIT_DATA, "instruction synthesis from VidLN narratives (rules LLM)",
                          entry("viit_jax.synthesize", "configs/synthesize_demo.py",
                                join_args({"world_dir": world, "seed": seed},
                                           config.synthesize.args), VIIT_DATA), world_phase))
      needs += (VIIT_DATA,)
    phases.append(Phase(name, whats[name], entry("viit_jax.train", f"configs/demo_{name}.py",
                                                 join_args(fields, p.args), name), needs))

  a = config.autolabel
  common = {"corpus.world_dir": world, "seed": seed, "corpus.limit": a.limit,
            "decode.num_samples": a.num_samples, "decode.top_p": a.top_p,
            "batch_size": a.batch_size}
  phases.append(Phase(LABEL_VIIT, "auto-label the pool: VIIT captions (phase-2 VLM, 8 frames)",
                      entry("viit_jax.autolabel", "configs/autolabel_demo.py",
                            join_args(common, {"mode": "viit", "init_from": w / "phase2",
                                                "version": "v1"}, a.args), LABEL_VIIT),
                      (*world_phase, "phase2")))
  phases.append(Phase(LABEL_FRAMES,
                      "auto-label the pool: frame captions (phase-0 image model, T=1 per frame)",
                      entry("viit_jax.autolabel", "configs/autolabel_demo.py",
                            join_args(common, {"mode": "frame_captioner",
                                                "init_from": w / "phase0", "version": "v1"},
                                       a.args, a.frame_args), LABEL_FRAMES),
                      (*world_phase, "phase0")))

  d = config.dual_encoder
  if d.init_from_phase not in (IMAGE_CLIP, *VLM_TRAIN):
    raise ValueError(f"dual_encoder.init_from_phase must be one of {(IMAGE_CLIP, *VLM_TRAIN)}, "
                     f"got {d.init_from_phase!r}")
  if d.init_from_phase == IMAGE_CLIP and clip.steps <= 0:
    raise ValueError("dual_encoder.init_from_phase=image_clip needs image_clip.steps > 0")
  def de_fields(source: str) -> dict[str, Any]:
    fields = {"caption_source": source, "data.world_dir": world, "seed": seed,
              "train.total_steps": d.steps, "train.batch_size": d.batch_size,
              "init_from": w / d.init_from_phase,
              "dual_encoder.viit_captions_dir": w / LABEL_VIIT / "v1",
              "dual_encoder.frame_captions_dir": w / LABEL_FRAMES / "v1"}
    if d.init_from_phase == IMAGE_CLIP:  # Else the config's default map (from a VLM's img/).
      fields["init_assignment_map"] = repr(dual_encoder_demo.IMAGE_CLIP_TO_DUAL_ENCODER)
    return fields

  # A dual encoder reads its start and the captions of its own source (alt-text: the world's).
  labels = {"alt_text": (), "frame_captions": (LABEL_FRAMES,), "viit": (LABEL_VIIT,)}
  for source, name in DUAL_ENCODERS.items():
    fields = de_fields(source)
    phases.append(Phase(name, f"dual encoder on {source.replace('_', ' ')}",
                        entry("viit_jax.train_dual_encoder", "configs/dual_encoder_demo.py",
                              join_args(fields, d.args), name),
                        (*world_phase, d.init_from_phase, *labels[source])))

  f = config.filter
  filtered = f.top_k > 0 or f.min_score > -1.0
  if filtered:
    phases.append(Phase(FILTER_VIIT, f"filter the VIIT captions by de_viit's scores (top "
                        f"{f.top_k or 'all'}, min score {f.min_score})",
                        entry("viit_jax.filter_captions", "configs/filter_captions.py",
                              join_args({"dual_encoder": w / DUAL_ENCODERS["viit"],
                                         "corpus": w / LABEL_VIIT / "v1", "top_k": f.top_k,
                                         "min_score": f.min_score}, f.args), FILTER_VIIT),
                        (*world_phase, DUAL_ENCODERS["viit"], LABEL_VIIT)))
    fields = {**de_fields("viit"), "dual_encoder.viit_captions_dir": w / FILTER_VIIT / "v1"}
    phases.append(Phase(DE_FILTERED, "dual encoder on the filtered VIIT captions",
                        entry("viit_jax.train_dual_encoder", "configs/dual_encoder_demo.py",
                              join_args(fields, d.args), DE_FILTERED),
                        (*world_phase, d.init_from_phase, FILTER_VIIT)))

  e = config.evaluate
  for name, (trained, what) in VLM_EVALS.items():
    fields = {"kind": "vlm", "checkpoint": w / trained, "data.world_dir": world,
              "data.num_frames": e.num_frames, "eval.max_examples": e.max_examples,
              "eval.batch_size": e.batch_size, "eval.seed": seed,
              "eval.caption_metrics": e.caption_metrics}
    phases.append(Phase(name, f"evaluate {what}",
                        entry("viit_jax.evaluate", "configs/evaluate_demo.py",
                              join_args(fields, e.args), name), (*world_phase, trained)))
  for name, de in {**DE_EVALS, **({EVAL_DE_FILTERED: DE_FILTERED} if filtered else {})}.items():
    fields = {"kind": "dual_encoder", "checkpoint": w / de, "data.world_dir": world,
              "eval.tasks": e.de_tasks, "eval.max_examples": e.de_max_examples,
              "eval.batch_size": e.batch_size, "eval.seed": seed}
    phases.append(Phase(name, f"evaluate the dual encoder {de}",
                        entry("viit_jax.evaluate", "configs/evaluate_demo.py",
                              join_args(fields, e.args), name), (*world_phase, de)))
  phases.append(Phase(REPORT, "report (report.md, report.html, claims.json)",
                      (py, "-m", "viit_jax.demo.report", f"--workdir={w}"),
                      tuple(p.name for p in phases)))
  return phases


def read_marker(workdir: pathlib.Path, name: str) -> dict[str, Any] | None:
  path = workdir / name / MARKER
  if not path.is_file():
    return None
  with open(path) as f:
    return json.load(f)


def fmt_s(seconds: float) -> str:
  seconds = float(seconds)
  if seconds < 60:
    return f"{seconds:.1f}s"
  m, s = divmod(int(round(seconds)), 60)
  return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m{s:02d}s"


# Start-up noise of TensorFlow / XLA / orbax that says nothing about the phase: kept in
# <workdir>/logs/<phase>.log, not echoed to the terminal.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cuda_platform|cuda_executor|cpu_feature_guard)"
    r"\.cc:"
    r"|[IW]\d{4} [\d:.]+\s+\d+ checkpoint_manager\.py:\d+\] (CheckpointManagerOptions\.read_only"
    r"|Given directory is read only)"
    r"|W\d{4} [\d:.]+\s+\d+ dataset_providers\.py:\d+\] Using an uncached FunctionDataset)")


# ------------------------------------------------------------------------------------------------
# Running one phase.


def _die_with_parent() -> None:
  """In the child before exec: SIGTERM when the pipeline dies (even by SIGKILL), so an orphaned
  phase never keeps writing into the workdir a rerun resumes."""
  try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except OSError:  # Not Linux: the signal handlers below still stop the child.
    pass


class PhaseFailed(RuntimeError):
  """A phase's child exited non-zero."""


class Interrupted(RuntimeError):
  """The pipeline was asked to stop (SIGTERM / SIGHUP), and its running phases with it."""


class _Child:
  """One phase's child process: its output goes to <workdir>/logs/<phase>.log and, without the
  start-up noise and with a `[phase]` prefix, to `out` (from a thread of its own)."""

  def __init__(self, phase: Phase, workdir: pathlib.Path, env: Mapping[str, str],
               out: Callable[[str], None]):
    self.phase, self.workdir = phase, workdir
    self.log_path = workdir / LOG_DIR / f"{phase.name}.log"
    self.log_path.parent.mkdir(parents=True, exist_ok=True)
    (workdir / phase.name).mkdir(parents=True, exist_ok=True)
    self.log = open(self.log_path, "ab")  # pylint: disable=consider-using-with
    self.log.write(f"\n=== {datetime.datetime.now().isoformat(timespec='seconds')} "
                   f"{' '.join(phase.argv)}\n".encode())
    self.t0 = time.time()
    self.proc = subprocess.Popen(phase.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=dict(env), preexec_fn=_die_with_parent)
    self.reader = threading.Thread(target=self._stream, args=(out,), daemon=True)
    self.reader.start()

  def _stream(self, out: Callable[[str], None]) -> None:
    assert self.proc.stdout is not None
    prefix = f"[{self.phase.name}] "
    for raw in iter(self.proc.stdout.readline, b""):
      self.log.write(raw)
      self.log.flush()
      for line in raw.decode("utf-8", "replace").rstrip("\n").split("\r"):
        if line.strip() and not _NOISE.match(line):
          out(prefix + line)

  def reap(self, block: bool = False) -> tuple[int, float] | None:
    """(exit code, CPU seconds of the child and its descendants) once it has exited, else None."""
    pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
    if pid == 0:
      return None
    self.proc.returncode = os.waitstatus_to_exitcode(status)
    self.reader.join(timeout=30)  # EOF comes when the child and its descendants are gone.
    self.log.close()
    return self.proc.returncode, usage.ru_utime + usage.ru_stime

  def record(self, cpu: float) -> dict[str, Any]:
    """Writes and returns the phase's DONE.json record (after its child exited 0)."""
    record = {"phase": self.phase.name, "what": self.phase.what, "argv": list(self.phase.argv),
              "wall_s": round(time.time() - self.t0, 2), "cpu_s": round(cpu, 2),
              "finished": datetime.datetime.now().isoformat(timespec="seconds"),
              "loadavg_1m_at_end": round(os.getloadavg()[0], 2)}
    tmp = self.workdir / self.phase.name / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, self.workdir / self.phase.name / MARKER)
    return record

  def stop(self) -> None:
    """SIGTERM, then SIGKILL after 30 s; reaps the child."""
    if self.proc.returncode is not None:
      return
    self.proc.terminate()
    deadline = time.time() + 30
    while self.reap() is None:
      if time.time() > deadline:
        self.proc.kill()
        self.reap(block=True)
        return
      time.sleep(0.1)


def run_phases(phases: Sequence[Phase], workdir: pathlib.Path, env: Mapping[str, str],
               out: Callable[[str], None], *, jobs: int = 1,
               on_start: Callable[[Phase], None] = lambda p: None,
               on_done: Callable[[Phase, dict[str, Any]], None] = lambda p, r: None
               ) -> list[dict[str, Any]]:
  """Runs every phase, each once the phases it needs (among `phases`) are done, at most `jobs` at
  a time, the earliest in `phases` first; returns their marker records in the order they ended.

  A failed phase starts nothing new: the phases running then finish (their work is kept), then
  PhaseFailed names it. SIGTERM / SIGHUP are forwarded to every running child, which stop (the
  entry points save and exit), then Interrupted; any other exception (Ctrl-C) stops them too.
  """
  names = {p.name for p in phases}
  pending = list(phases)
  running: list[_Child] = []
  done: set[str] = set()
  records: list[dict[str, Any]] = []
  failures: list[str] = []
  stopped_by: list[int] = []
  lock = threading.Lock()  # One line at a time from the children's threads and this one.

  def say(line: str) -> None:
    with lock:
      out(line)

  def forward(signum, frame):  # noqa: ARG001
    stopped_by.append(signum)
    for child in running:
      child.proc.send_signal(signum)

  old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
  try:
    while pending or running:
      while pending and len(running) < max(1, jobs) and not failures and not stopped_by:
        ready = [p for p in pending if all(n in done or n not in names for n in p.needs)]
        if not ready:
          break
        pending.remove(ready[0])
        with lock:
          on_start(ready[0])
        running.append(_Child(ready[0], workdir, env, say))
      if not running:
        break  # After a failure or a signal: nothing left to wait for.
      time.sleep(0.2)
      for child in list(running):
        ended = child.reap()
        if ended is None:
          continue
        running.remove(child)
        rc, cpu = ended
        if rc != 0 and stopped_by:  # Stopped as asked: not a failure, it resumes on a rerun.
          continue
        if rc != 0:
          failures.append(
              f"phase {child.phase.name} failed with exit code {rc} after "
              f"{fmt_s(time.time() - child.t0)}; its output is in {child.log_path}")
          if running:
            say(f"[pipeline] {failures[-1]}; waiting for "
                f"{', '.join(c.phase.name for c in running)} to finish")
          continue
        records.append(child.record(cpu))
        done.add(child.phase.name)
        with lock:
          on_done(child.phase, records[-1])
  except BaseException:
    for child in running:
      child.stop()
    raise
  finally:
    for s, h in old.items():
      signal.signal(s, h)
  if stopped_by:
    raise Interrupted(f"stopped by signal {stopped_by[0]}; rerun the same command to resume")
  if failures:
    raise PhaseFailed("; ".join(failures) + ". Fix the cause and rerun the same command: "
                      "finished phases are skipped and the failed one resumes.")
  if pending:  # Only when a phase needs one that comes after it in `phases`.
    raise ValueError(f"phases {[p.name for p in pending]} wait for phases that never ran")
  return records


def run_phase(phase: Phase, workdir: pathlib.Path, env: Mapping[str, str],
              out: Callable[[str], None]) -> dict[str, Any]:
  """Runs one phase's child to completion, streaming its output; returns the marker record."""
  return run_phases([phase], workdir, env, out)[0]


def run_config(run: pathlib.Path) -> ml_collections.ConfigDict:
  """The pipeline config a run was made with (its workdir's CONFIG_FILE)."""
  path = run / CONFIG_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist: not a pipeline workdir (make demo, or "
                            f"python -m viit_jax.pipeline ... --workdir={run})")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def finished_argv(run: pathlib.Path, name: str) -> tuple[str, ...]:
  """The command that made phase `name` of a finished pipeline run (its marker's)."""
  marker = read_marker(run, name)
  if marker is None:
    raise FileNotFoundError(f"{run / name / MARKER} does not exist: finish the run first (make "
                            f"demo, or python -m viit_jax.pipeline ... --workdir={run})")
  return tuple(marker["argv"])


def replace_once(argv: Sequence[str], old: str, new: str, what: str) -> tuple[str, ...]:
  """argv with `old` replaced by `new`; an error unless `old` occurs exactly once in it."""
  hits = sum(a.count(old) for a in argv)
  if hits != 1:
    raise ValueError(f"expected {old!r} once in the run's {what} command, found it {hits} times: "
                     f"{list(argv)}")
  return tuple(a.replace(old, new) for a in argv)


def run_chain(chain: Sequence[Phase], workdir: pathlib.Path, env: Mapping[str, str],
              out: Callable[[str], None], tag: str) -> None:
  """Runs phases that each read the one before (a retrained model, then its evaluation) into
  `workdir`, one at a time: a phase whose marker holds the same command is done and skipped, until
  one runs; from there every phase runs again, its old outputs removed first (a stale checkpoint
  of another command must not resume). `tag` prefixes the progress lines."""
  ran = False
  for phase in chain:
    marker = read_marker(workdir, phase.name)
    if not ran and marker is not None and marker["argv"] == list(phase.argv):
      out(f"[{tag}] {phase.name}: done already, skipped")
      continue
    if (workdir / phase.name).exists():
      shutil.rmtree(workdir / phase.name)
    ran = True
    out(f"[{tag}] {phase.name}: {phase.what}")
    record = run_phase(phase, workdir, env, out)
    out(f"[{tag}] {phase.name} done in {record['wall_s']:.0f}s")


def child_env(config: ml_collections.ConfigDict, base: Mapping[str, str]) -> dict[str, str]:
  """The children's environment: unbuffered output, quiet TF, the shared JAX compile cache."""
  env = dict(base)
  env["PYTHONUNBUFFERED"] = "1"
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.setdefault("CUDA_VISIBLE_DEVICES", "")
  env.setdefault("JAX_PLATFORMS", "cpu")  # The demo runs on CPU (libtpu, if installed, is not asked).
  repo = REPO
  env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
  if config.compile_cache:
    cache = pathlib.Path(config.compile_cache)
    cache = cache if cache.is_absolute() else repo / cache
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))
    env.setdefault("VIIT_COMPILE_CACHE", str(cache))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  return env
