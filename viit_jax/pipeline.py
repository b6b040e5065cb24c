"""The whole method end to end on the demo world: `make demo`.

  python -m viit_jax.pipeline --config=configs/demo_pipeline.py[:seed=N,preset=test,...] \
      --workdir=runs/demo [--stop_after=PHASE]

Runs every phase of `viit_jax.demo.phases.plan` as a subprocess of its own entry point (exactly
the command a user would type; a crash stays inside its phase), streaming the child's output with
a `[phase]` prefix (the phase list is in viit_jax/demo/phases.py). Up to `jobs` (2) phases run at
once, each as soon as the phases whose outputs it reads are done.

Each phase writes into `<workdir>/<phase>/`; `<workdir>/<phase>/DONE.json` (command, wall and CPU
seconds) is written after the child exits 0. A rerun skips phases with a marker, and the interrupted
phase resumes from its own checkpoints / work units (the entry points resume by themselves). A
marker written by a different command (another seed or config) is refused: use a fresh workdir.
The pipeline's own timing table (wall and CPU seconds per phase, CPU = user + system time of the
child and its descendants) is printed at the end and written to `<workdir>/timings.json`.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections

from viit_jax import paths
from viit_jax import workdir_lock
from viit_jax.demo import phases as ph

def timing_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """A plain-text table of phase | status | wall | CPU | what."""
  lines = [f"{'phase':<17} {'status':<8} {'wall':>9} {'CPU':>9}  what", "-" * 96]
  for r in rows:
    lines.append(f"{r['phase']:<17} {r['status']:<8} {ph.fmt_s(r['wall_s']):>9} "
                 f"{ph.fmt_s(r['cpu_s']):>9}  {r['what']}")
  tw, tc = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
  lines += ["-" * 96, f"{'sum of phases':<17} {'':<8} {ph.fmt_s(tw):>9} {ph.fmt_s(tc):>9}"]
  return "\n".join(lines)


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike[str], *,
        stop_after: str = "", env: Mapping[str, str] | None = None,
        out: Callable[[str], None] = lambda s: print(s, flush=True)) -> list[dict[str, Any]]:
  """Runs (or resumes) the pipeline; returns one timing row per phase run or skipped."""
  if "://" in os.fspath(workdir):
    raise ValueError(f"--workdir={workdir}: the demo pipeline runs in a local directory (it "
                     "renders the demo world there); each entry point takes a gs:// workdir itself")
  w = pathlib.Path(workdir).resolve()
  w.mkdir(parents=True, exist_ok=True)
  phases = ph.plan(config, w)
  names = [p.name for p in phases]
  if stop_after and stop_after not in names:
    raise ValueError(f"--stop_after={stop_after!r} is not a phase (phases: {names})")
  with workdir_lock.WorkdirLock(w):  # One pipeline per run directory (the phases lock theirs).
    return _run_phases(config, w, phases, stop_after, env, out)


def _run_phases(config: ml_collections.ConfigDict, w: pathlib.Path, phases: list[ph.Phase],
                stop_after: str, env: Mapping[str, str] | None, out: Callable[[str], None]
                ) -> list[dict[str, Any]]:
  from viit_jax import config_lib  # pylint: disable=g-import-not-at-top
  paths.write_text(w / ph.CONFIG_FILE, config_lib.to_json(config))
  env = ph.child_env(config, os.environ if env is None else env)
  started = time.time()
  out(f"[pipeline] {len(phases)} phases -> {w} (seed {config.seed}, preset {config.preset}), "
      f"{config.jobs} at a time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
  if stop_after:
    phases = phases[:[p.name for p in phases].index(stop_after) + 1]
  number = {p.name: f"({i + 1}/{len(phases)})" for i, p in enumerate(phases)}
  records: dict[str, dict[str, Any]] = {}
  for phase in phases:
    marker = ph.read_marker(w, phase.name)
    if marker is None:
      continue
    if marker["argv"] != list(phase.argv):
      raise RuntimeError(
          f"{w / phase.name / ph.MARKER} was written by another command:\n  {marker['argv']}\n"
          f"this run would use:\n  {list(phase.argv)}\nUse a fresh --workdir (or delete "
          f"{w / phase.name} and the phases after it).")
    out(f"[pipeline] {number[phase.name]} {phase.name}: done already "
        f"({ph.fmt_s(marker['wall_s'])}), skipped")
    records[phase.name] = {**marker, "status": "skipped"}

  def started_phase(phase: ph.Phase) -> None:
    out(f"[pipeline] {number[phase.name]} {phase.name}: {phase.what}")
    out(f"[pipeline]   $ {' '.join(phase.argv)}")

  def finished_phase(phase: ph.Phase, record: dict[str, Any]) -> None:
    out(f"[pipeline] {number[phase.name]} {phase.name} done in {ph.fmt_s(record['wall_s'])} "
        f"wall, {ph.fmt_s(record['cpu_s'])} CPU")
    records[phase.name] = {**record, "status": "ran"}

  ph.run_phases([p for p in phases if p.name not in records], w, env, out, jobs=config.jobs,
                on_start=started_phase, on_done=finished_phase)
  if stop_after:
    out(f"[pipeline] stopping after {stop_after}")
  rows = [records[p.name] for p in phases]
  total = time.time() - started
  summary = {"rows": rows, "this_run_wall_s": round(total, 2),
             "this_run_cpu_s": round(sum(r["cpu_s"] for r in rows if r["status"] == "ran"), 2),
             "all_phases_wall_s": round(sum(r["wall_s"] for r in rows), 2),
             "all_phases_cpu_s": round(sum(r["cpu_s"] for r in rows), 2),
             "jobs": config.jobs, "cpu_count": os.cpu_count()}
  paths.write_text(w / ph.TIMINGS_FILE, json.dumps(summary, indent=1))
  out("[pipeline] phase timings (wall = elapsed; CPU = user + system seconds of the phase's "
      "processes):")
  for line in timing_table(rows).splitlines():
    out(f"[pipeline] {line}")
  claims_path = w / "claims.json"
  if (w / ph.REPORT / ph.MARKER).is_file() and claims_path.is_file():
    claims = json.loads(claims_path.read_text())
    for c in claims["claims"]:
      out(f"[pipeline] claim {c['id']}: {c['verdict']}: {c['statement']} | {c['evidence']}")
    out(f"[pipeline] report: {w / 'report.md'} and {w / 'report.html'}")
  out(f"[pipeline] total wall time of this run: {ph.fmt_s(total)} "
      f"(the phases' wall times add up to {ph.fmt_s(summary['all_phases_wall_s'])}, including "
      "ones done earlier)")
  return rows


def main(argv: Sequence[str]) -> int:
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  del app, config_flags
  if len(argv) > 1:
    raise SystemExit(f"unexpected arguments: {argv[1:]}")
  config = flags.FLAGS.config
  if config is None or not flags.FLAGS.workdir:
    raise SystemExit("--config and --workdir are required")
  try:
    run(config, flags.FLAGS.workdir, stop_after=flags.FLAGS.stop_after)
  except ph.PhaseFailed as e:
    print(f"[pipeline] ERROR: {e}", file=sys.stderr, flush=True)
    return 1
  except workdir_lock.WorkdirLocked as e:
    print(f"[pipeline] WorkdirLocked: {e}", file=sys.stderr, flush=True)
    return workdir_lock.EXIT_CODE
  except ph.Interrupted as e:
    print(f"[pipeline] {e}", file=sys.stderr, flush=True)
    return 143
  except KeyboardInterrupt:
    print("[pipeline] interrupted; rerun the same command to resume", file=sys.stderr, flush=True)
    return 130
  return 0


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file("config", "configs/demo_pipeline.py",
                                  "Pipeline config (configs/demo_pipeline.py:key=value,...).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Pipeline run directory (e.g. runs/demo).")
  flags.DEFINE_string("stop_after", "", "Stop after this phase (e.g. phase2).")


if __name__ == "__main__":
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  define_flags()
  _app.run(lambda argv: sys.exit(main(argv)))
