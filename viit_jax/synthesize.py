"""Video instruction data synthesis (the paper's VIIT data): narratives -> LLM -> QA dataset.

  python -m viit_jax.synthesize --config=configs/synthesize_demo.py:world_dir=DIR --workdir=OUT

Reads VidLN-format narratives, builds one prompt per (clip, kind) for the kinds temporal, causal and
shortqa (viit_jax/synthesis/templates.py), sends them to the configured back-end (rules | openai |
local), validates every reply (accepted pairs go to the dataset, every rejected reply to a rejects
file with its reason), and writes <workdir>/<version>/ in deterministic work units, atomically
(viit_jax/synthesis/dataset.py has the layout). Every output goes through viit_jax.paths, so the
workdir may be local or `gs://...`. So may the narratives file: a remote one is read from a local
copy, and its videos, which synthesis never opens, cannot be checked (check_video_files=False).

Rerunning the same command resumes: finished units are skipped; the reply cache
(<workdir>/cache/, synthesis/cache.py) means a prompt whose reply was kept is never sent again.
When every unit is finished, manifest.json is written.

Preemption: on SIGTERM the job finishes and writes the unit in progress, writes its run record
(`"preempted": true`), writes no manifest and exits with runtime.EXIT_PREEMPTED (42); launchers
rerun the same command, which resumes. Units should be small enough to finish within the
platform's grace period (30 s on GKE by default).
"""
from __future__ import annotations

import collections
import dataclasses
import datetime
import os
import pathlib
import socket
import time
from collections.abc import Sequence
from typing import Any

from absl import logging
import ml_collections

from data import rejects as rejects_lib
from viit_jax import cards
from viit_jax import paths
from viit_jax import records as records_lib
from viit_jax import runtime
from viit_jax.synthesis import backends
from viit_jax.synthesis import dataset
from viit_jax.synthesis import narratives as narratives_lib
from viit_jax.synthesis import templates
from viit_jax.synthesis import validate


@dataclasses.dataclass(frozen=True)
class UnitResult:
  records: list[dataset.Record]
  rejects: list[dataset.RejectRow]
  meta: dict[str, Any]


class BackendFailed(RuntimeError):
  """A work unit failed at the back-end beyond config.max_backend_error_rate (circuit breaker)."""


class Preempted(Exception):
  """SIGTERM stopped the job between units: the finished ones are written, the manifest is not."""


def narratives_path(config: ml_collections.ConfigDict) -> paths.Path:
  """The VidLN JSONL file to read: config.narratives (local or gs://) or the demo world's."""
  if config.narratives:
    name = config.narratives
  elif config.world_dir:
    name = os.path.join(config.world_dir, "vidln", "train.jsonl")
  else:
    raise ValueError("set config.narratives (a VidLN JSONL file) or config.world_dir (a demo world)")
  path = paths.path(name if paths.is_remote(name) else pathlib.Path(name).resolve())
  if not path.is_file():
    raise FileNotFoundError(f"narratives file {path} does not exist")
  return path


def read_narratives(src: paths.Path, config: ml_collections.ConfigDict,
                    rejects: rejects_lib.Rejects) -> list[narratives_lib.Narrative]:
  """The narratives of `src`; a remote file is read from a local copy (its videos, which would sit
  next to it in the bucket, cannot be checked here)."""
  if not paths.is_remote(src):
    return narratives_lib.read(os.fspath(src), rejects, config.video_path_template,
                               config.check_video_files)
  if config.check_video_files:
    raise ValueError(f"narratives file {src} is remote: its videos cannot be checked; set "
                     "config.check_video_files=False (synthesis reads text only)")
  return narratives_lib.read(paths.local_copy(src), rejects, config.video_path_template, False)


def limits_from(config: ml_collections.ConfigDict) -> validate.Limits:
  v = config.validate
  return validate.Limits(v.min_question_words, v.max_question_words, v.max_answer_words,
                         v.shortqa_max_answer_words, v.copy_min_words)


def settings_of(config: ml_collections.ConfigDict, backend: backends.Backend,
                narratives: Sequence[narratives_lib.Narrative], video_root: str) -> dict[str, Any]:
  """What a dataset version is bound to; the same version with other settings is refused."""
  sampling: dict[str, Any] = {}
  if config.backend == "openai":
    sampling = {k: config.openai[k] for k in ("temperature", "top_p", "max_tokens")}
  elif config.backend == "local":
    sampling = {k: config.local[k] for k in ("temperature", "top_p", "max_decode_len",
                                             "max_prompt_len", "stop_piece", "seed")}
  return {
      "version": config.version,
      "backend": backend.name,
      "model_name": backend.model_name,
      "sampling": sampling,
      "kinds": list(config.kinds),
      "seed": config.seed,
      "unit_size": config.unit_size,
      "template_hashes": {k: templates.template_hash(k) for k in config.kinds},
      "validate": config.validate.to_dict(),
      "narratives_sha256": narratives_lib.fingerprint(list(narratives)),
      "num_narratives": len(narratives),
      "video_root": video_root,
  }


def process_unit(index: int, unit: Sequence[narratives_lib.Narrative],
                 config: ml_collections.ConfigDict, backend: backends.Backend,
                 limits: validate.Limits) -> UnitResult:
  """Prompts, completions and validation for one work unit."""
  prompts = [templates.build_prompt(n, kind, config.seed) for n in unit for kind in config.kinds]
  completions = backend.complete(prompts)
  if [c.prompt_id for c in completions] != [p.prompt_id for p in prompts]:
    raise RuntimeError(f"back-end {backend.name} returned completions out of order")
  records: list[dataset.Record] = []
  rejects: list[dataset.RejectRow] = []
  counts: collections.Counter[str] = collections.Counter()
  reasons: collections.Counter[str] = collections.Counter()
  backend_errors = 0
  for p, c in zip(prompts, completions):
    if c.error is not None:
      backend_errors += 1
      verdict: validate.Accepted | validate.Rejected = validate.Rejected(f"backend_{c.error}",
                                                                          c.detail)
    else:
      assert c.text is not None
      verdict = validate.check(c.text, p.kind, p.narrative.text(), limits)
    if isinstance(verdict, validate.Accepted):
      records.append(dataset.Record(p.prompt_id, p.clip_id, p.narrative.video_path, p.kind,
                                    verdict.question, verdict.answer, p.shots))
      counts[p.kind] += 1
    else:
      rejects.append(dataset.RejectRow(p.prompt_id, p.clip_id, p.kind, verdict.reason,
                                       verdict.detail, c.text))
      reasons[verdict.reason] += 1
  meta = {
      "unit": index,
      "clip_ids": [n.clip_id for n in unit],
      "num_prompts": len(prompts),
      "accepted": dict(sorted(counts.items())),
      "prompts_per_kind": dict(collections.Counter(p.kind for p in prompts)),
      "rejects": dict(sorted(reasons.items())),
      "rejects_per_kind": dict(collections.Counter(r.kind for r in rejects)),
      "backend_errors": backend_errors,
      "cached": sum(c.cached for c in completions),
  }
  return UnitResult(records, rejects, meta)


def finalize(units: dataset.Units, num_units: int, settings: dict[str, Any],
             input_rejects: dict[str, int]) -> dict[str, Any] | None:
  """Writes the merged rejects and manifest.json once every unit is finished; else None."""
  metas = [units.meta(i) for i in range(num_units)]
  if any(m is None for m in metas):
    return None
  accepted: collections.Counter[str] = collections.Counter()
  prompts: collections.Counter[str] = collections.Counter()
  reasons: collections.Counter[str] = collections.Counter()
  per_kind_rejects: collections.Counter[str] = collections.Counter()
  merged: list[dict[str, Any]] = []
  for i, m in enumerate(metas):
    assert m is not None
    accepted.update(m["accepted"])
    prompts.update(m["prompts_per_kind"])
    reasons.update(m["rejects"])
    per_kind_rejects.update(m["rejects_per_kind"])
    merged.extend(units.rejects(i))
  paths.write_atomic(units.out_dir / "rejects.jsonl", paths.jsonl_bytes(merged))
  runs = sorted(p.name for p in (units.out_dir / "runs").glob("*.json"))
  total = sum(prompts.values())
  manifest = {
      **settings,
      "stand_in_for_llm": settings["backend"] == "rules",
      "note": ("written by the rule-based stand-in for an LLM (viit_jax/synthesis/rules.py), "
               "not by a language model" if settings["backend"] == "rules" else
               f"written by {settings['model_name']} through the {settings['backend']} back-end"),
      "num_units": num_units,
      "prompts_per_kind": dict(sorted(prompts.items())),
      "counts_per_kind": dict(sorted(accepted.items())),
      "num_examples": sum(accepted.values()),
      "rejects_per_reason": dict(sorted(reasons.items())),
      "rejects_per_kind": dict(sorted(per_kind_rejects.items())),
      "reject_rate": (total - sum(accepted.values())) / total if total else 0.0,
      "input_rejects_per_reason": input_rejects,
      "files": {"tfrecord": dataset.TFRECORD_PATTERN, "jsonl": "units/unit-*.jsonl",
                "rejects": "rejects.jsonl", "input_rejects": "input_rejects.jsonl"},
      "features": list(dataset.RECORD_FEATURES),
      "runs": runs,
      "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
  }
  paths.write_json(units.out_dir / "manifest.json", manifest)
  cards.write_card(units.out_dir)
  return manifest


def run(config: ml_collections.ConfigDict, workdir: paths.PathLike) -> dict[str, Any] | None:
  """Synthesizes (or resumes) config.version under `workdir` (local or gs://).

  Returns the manifest once every unit is written, None while other shards' units are missing.
  Raises Preempted when SIGTERM stopped the job between units (see the module docstring).
  """
  with runtime.SigtermFlag() as stop:
    return _run(config, paths.path(workdir), stop)


def _run(config: ml_collections.ConfigDict, workdir: paths.Path, stop: runtime.SigtermFlag
         ) -> dict[str, Any] | None:
  # Setup: input, back-end, the version's settings.
  started = time.time()
  bad_kinds = set(config.kinds) - set(templates.KINDS)
  if bad_kinds or not config.kinds:
    raise ValueError(f"config.kinds {config.kinds} must be a non-empty subset of {templates.KINDS}")
  if not 0 <= config.shard_index < config.num_shards:
    raise ValueError(f"config.shard_index {config.shard_index} not in [0, {config.num_shards})")
  if config.unit_size < 1:
    raise ValueError("config.unit_size must be >= 1")
  out_dir = workdir / config.version
  src = narratives_path(config)
  input_rejects = rejects_lib.Rejects("vidln")
  narratives = read_narratives(src, config, input_rejects)
  if not narratives:
    raise ValueError(f"no usable narrative in {src} (rejected lines: {input_rejects.counts})")
  paths.write_atomic(out_dir / "input_rejects.jsonl",
                     paths.jsonl_bytes(dataclasses.asdict(r) for r in input_rejects.records))
  backend = backends.make(config, paths.name(workdir / "cache" / "replies.jsonl"))
  try:
    settings = settings_of(config, backend, narratives, paths.name(src.parent))
    records_lib.bind_settings(out_dir, settings)
    limits = limits_from(config)
    units = dataset.Units(out_dir)
    chunks = [narratives[i:i + config.unit_size]
              for i in range(0, len(narratives), config.unit_size)]
    mine = [i for i in range(len(chunks)) if i % config.num_shards == config.shard_index]
    logging.info("synthesize: %d narratives (%d lines rejected) -> %d units (%d for shard %d/%d), "
                 "backend %s (%s)", len(narratives), input_rejects.total, len(chunks), len(mine),
                 config.shard_index, config.num_shards, backend.name, backend.model_name)

    # Loop: one work unit at a time, each written atomically; SIGTERM stops between units.
    loop_start = time.time()
    done = skipped = prompts_done = 0
    for i in mine:
      if stop:
        break
      meta = units.meta(i)
      expected = [n.clip_id for n in chunks[i]]
      if (meta is not None and meta["clip_ids"] == expected
          and not (config.retry_backend_errors and meta["backend_errors"] > 0)):
        skipped += 1
        continue
      t0 = time.time()
      result = process_unit(i, chunks[i], config, backend, limits)
      errors, num = result.meta["backend_errors"], result.meta["num_prompts"]
      if num and errors / num > config.max_backend_error_rate:
        failed = {k: v for k, v in result.meta["rejects"].items() if k.startswith("backend_")}
        raise BackendFailed(
            f"synthesize: {errors} of {num} prompts of unit {i} failed at the back-end "
            f"({failed}), more than max_backend_error_rate={config.max_backend_error_rate}; the "
            f"unit and the manifest are not written. Check the server ({backend.name}: "
            f"{backend.model_name}) and rerun the same command.")
      units.write(i, result.records, result.rejects, result.meta)
      backend.sync()  # A remote reply cache publishes this unit's replies.
      done += 1
      prompts_done += result.meta["num_prompts"]
      logging.info("unit %d/%d: %d prompts, %d accepted, %d rejected (%d back-end errors, %d "
                   "cached) in %.2fs", i + 1, len(chunks), result.meta["num_prompts"],
                   len(result.records), len(result.rejects), result.meta["backend_errors"],
                   result.meta["cached"], time.time() - t0)
    loop_s = time.time() - loop_start
    preempted = bool(stop)

    # Finish: this run's record, and the manifest if every unit (of every shard) is written.
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    run_record = {
        "host": socket.gethostname(), "pid": os.getpid(), "shard": config.shard_index,
        "num_shards": config.num_shards, "units_written": done, "units_skipped": skipped,
        "prompts": prompts_done, "loop_seconds": loop_s, "total_seconds": time.time() - started,
        "prompts_per_second": prompts_done / loop_s if loop_s > 0 else 0.0,
        "backend_stats": backend.stats(), "preempted": preempted,
    }
    paths.write_json(out_dir / "runs" / f"run-{stamp}-shard{config.shard_index}.json",
                     run_record)
  finally:
    backend.close()  # Publishes the replies received, also when the run fails.
  logging.info("synthesize: wrote %d units, skipped %d, %d prompts in %.2fs (%.1f prompts/s); "
               "back-end: %s", done, skipped, prompts_done, loop_s,
               run_record["prompts_per_second"], run_record["backend_stats"])
  if preempted:
    raise Preempted(
        f"synthesize: SIGTERM: stopped after writing {done} units ({skipped} skipped, "
        f"{len(mine) - done - skipped} of this shard's left); no manifest; rerun the same command "
        "to resume")
  manifest = finalize(units, len(chunks), settings, input_rejects.counts)
  if manifest is None:
    logging.info("synthesize: other shards' units are still missing; no manifest yet")
  else:
    logging.info("synthesize: complete: %s (%d examples, reject rate %.3f)",
                 out_dir / "manifest.json", manifest["num_examples"], manifest["reject_rate"])
  return manifest


def main(args: runtime.Args) -> int:
  try:
    run(args.config, args.workdir)
  except Preempted as e:
    logging.warning("%s", e)
    return runtime.EXIT_PREEMPTED
  except BackendFailed as e:
    logging.error("%s", e)
    return runtime.EXIT_BACKEND_FAILED
  return 0


def lock_name(config: ml_collections.ConfigDict) -> str:
  """Shards of one version share the workdir, each holding its own lock."""
  return f".lock-shard{config.shard_index}of{config.num_shards}" if config.num_shards > 1 else ""


if __name__ == "__main__":
  runtime.run(main, uses_jax=False, lock_name=lock_name)
