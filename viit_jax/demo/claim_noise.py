"""How sure is claim 2: its margin over dual encoders retrained with other trainer seeds.

  python -m viit_jax.demo.claim_noise --run=runs/demo [--seeds=1,2,3] [--out=DIR]

Claim 2 compares one dual encoder trained on the VIIT captions with one trained on the frame
captions, by text-to-video R@1 over the 400 1k-A-style queries. Both are one draw of the trainer's
randomness (data order, which caption of a clip each step reads, scale jitter, the fresh temporal
position embedding), and 1 R@1 point is 4 queries. For a finished `make demo` run (`--run`, the
pipeline's workdir) this retrains both with the run's own de_viit and de_frames commands, changing
only the trainer seed, and evaluates every one of them (the run's own two as well) with the run's
evaluation command on the 1k-A pairs and on the full protocol (every sentence of the same test
clips a query, about 8x the queries). It prints each draw's margin, VIIT minus frame captions, and
the margins' mean and standard deviation over the draws: a margin smaller than its spread is not
something the captions decide. About 2 minutes per extra seed on 2 cores.

Outputs under `--out` (default <run>/claim_noise): de_viit_s<N>, de_frames_s<N> (the retrained dual
encoders), eval_<de>_s<N> (their evaluations; the run's own seed is evaluated from the run's
checkpoint), each with logs/ and a DONE.json marker (a rerun skips what is done), results.json.
docs/demo_results.md quotes these measurements; they are not tests.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from viit_jax.demo import phases
from viit_jax.demo import report

SOURCES = {"viit": "VIIT captions", "frame_captions": "frame captions"}
TASKS = "msrvtt_retrieval+msrvtt_full_retrieval"
# The report's numbers (report.DE_METRICS) compared, with their column names: 1k-A R@1 (the
# claim's) and the full protocol's R@1/5/10.
METRICS = {"r1": "1k-A R@1", "full_r1": "full R@1", "full_r5": "full R@5", "full_r10": "full R@10"}
RESULTS = "results.json"


def draw_phases(run: pathlib.Path, out: pathlib.Path, source: str, seed: int, run_seed: int
                ) -> list[phases.Phase]:
  """The run's dual encoder of `source` retrained with trainer seed `seed` (none for the run's
  own seed), then evaluated with the run's command on TASKS, into `out`."""
  de = phases.DUAL_ENCODERS[source]
  ev = f"eval_{de}"
  swap = phases.replace_once
  chain = []
  checkpoint = run / de
  if seed != run_seed:
    checkpoint = out / f"{de}_s{seed}"
    train = swap(phases.finished_argv(run, de), f",seed={run_seed},", f",seed={seed},", de)
    train = swap(train, f"--workdir={run / de}", f"--workdir={checkpoint}", de)
    chain.append(phases.Phase(checkpoint.name, f"dual encoder on {SOURCES[source]}, trainer "
                              f"seed {seed}", train))
  evaluate = phases.finished_argv(run, ev)
  tasks = re.search(r"eval\.tasks=([^,]*)", " ".join(evaluate))
  if tasks is None:
    raise ValueError(f"the run's {ev} command names no eval.tasks: {list(evaluate)}")
  evaluate = swap(evaluate, f"eval.tasks={tasks.group(1)},", f"eval.tasks={TASKS},", ev)
  evaluate = swap(evaluate, f"checkpoint={run / de},", f"checkpoint={checkpoint},", ev)
  evaluate = swap(evaluate, f"--workdir={run / ev}", f"--workdir={out / f'{ev}_s{seed}'}", ev)
  chain.append(phases.Phase(f"{ev}_s{seed}", f"evaluate it ({TASKS})", evaluate))
  return chain


def read_metrics(workdir: pathlib.Path, phase: str) -> dict[str, float]:
  """METRICS from the metrics.json of evaluation `phase` under `workdir`."""
  m = report.load_metrics(workdir, phase)
  return {k: report.lookup(m, report.DE_METRICS[k]) for k in METRICS}


def summarize(draws: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
  """Per metric: each draw's margin (VIIT minus frame captions), their mean and sample standard
  deviation (0 with one draw). `draws`: seed -> source -> METRICS."""
  out = {}
  for k in METRICS:
    margins = [d["viit"][k] - d["frame_captions"][k] for d in draws.values()]
    out[k] = {"margins": margins, "mean": statistics.fmean(margins),
              "sd": statistics.stdev(margins) if len(margins) > 1 else 0.0}
  return out


def measure(run: pathlib.Path, out: pathlib.Path, seeds: Sequence[int],
            log: Callable[[str], None] = print) -> dict[str, Any]:
  """Retrains and evaluates each draw (the run's own seed first); writes and returns results.json's
  content."""
  run, out = run.resolve(), out.resolve()
  cfg = phases.run_config(run)
  run_seed = int(cfg.seed)
  env = phases.child_env(cfg, os.environ)
  order = [run_seed, *(s for s in dict.fromkeys(seeds) if s != run_seed)]
  draws: dict[int, dict[str, dict[str, float]]] = {}
  for seed in order:
    draws[seed] = {}
    for source in SOURCES:
      chain = draw_phases(run, out, source, seed, run_seed)
      phases.run_chain(chain, out, env, log, "claim_noise")
      draws[seed][source] = read_metrics(out, chain[-1].name)
  results = {"run": str(run), "run_seed": run_seed, "seeds": order,
             "draws": {str(s): d for s, d in draws.items()}, "margins": summarize(draws)}
  out.mkdir(parents=True, exist_ok=True)
  (out / RESULTS).write_text(json.dumps(results, indent=1))
  return results


def table(results: Mapping[str, Any]) -> str:
  """Markdown: one row per trainer seed (VIIT / frame captions / margin per metric), then the
  margins' mean and standard deviation."""
  header = ["trainer seed", *(f"{c} VIIT / frames (margin)" for c in METRICS.values())]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for seed, d in results["draws"].items():
    own = " (the run's)" if int(seed) == results["run_seed"] else ""
    cells = [f"{d['viit'][k]:.2f} / {d['frame_captions'][k]:.2f} "
             f"({d['viit'][k] - d['frame_captions'][k]:+.2f})" for k in METRICS]
    lines.append(f"| {seed}{own} | " + " | ".join(cells) + " |")
  m = results["margins"]
  lines.append("| margin: mean (sd) | " + " | ".join(f"{m[k]['mean']:+.2f} ({m[k]['sd']:.2f})"
                                                      for k in METRICS) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--run", required=True, help="a finished pipeline workdir (e.g. runs/demo)")
  p.add_argument("--out", default="", help="default: <run>/claim_noise")
  p.add_argument("--seeds", default="1,2,3",
                 help="trainer seeds to retrain with, comma-separated (the run's own is always in)")
  a = p.parse_args(argv)
  run = pathlib.Path(a.run)
  try:
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
  except ValueError:
    p.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
  out = pathlib.Path(a.out) if a.out else run / "claim_noise"
  try:
    results = measure(run, out, seeds)
  except FileNotFoundError as e:  # Not a finished pipeline run.
    p.error(str(e))
  print(f"claim 2's margin, VIIT minus frame captions, over {len(results['seeds'])} trainer seeds "
        "of both dual encoders (1k-A: 400 queries; full: every sentence of the same clips):")
  print(table(results))
  print(f"results: {out / RESULTS}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
