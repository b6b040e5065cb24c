"""Phase 3: auto-label an unlabeled video corpus with the adapted VLM (VideoCC+ / InternVid+).

  python -m viit_jax.autolabel --config=configs/autolabel_demo.py:<key=value,...> --workdir=DIR

Reads top to bottom: config -> distributed start-up -> corpus scan (fixed order, work units) ->
settings bound to the output version -> model + parameters from `init_from` -> the loop over this
process's unfinished units -> run record -> manifest (once every unit of every process is written).

Modes:
  viit             each clip's T frames go to the video-language model at once; K captions per clip.
  frame_captioner  the paper's baseline: k frames of each clip are captioned one by one by the image
                   model (T=1); sample k of the clip joins the k frame captions of sample k
                   (deduplicated, in time order, `frame_captioner.separator`).

Work units: the corpus (WebVid CSV, InternVid JSONL or the demo pool) is read in file order;
well-formed, de-duplicated rows get a global index i and form units of `unit_size` consecutive
clips. Process p of P takes units u with u % P == p and decodes batches of `batch_size` clips
sharded over its own devices (the last batch padded, the padding dropped). Independent jobs on one
version (`shard_index` s of `num_shards` n, each with its own workdir lock) take units
u % n == s first; whichever job sees every unit finished writes the manifest. Sample k of clip i is
drawn with keys derived from (seed, i, k) only (viit_jax/decoding.py), so the captions do not
depend on the process or device count.

Output, <workdir>/<version>/:
  settings.json                  what the version is bound to (checkpoint path + step, model,
                                 prompt, decoding, seed, frames, corpus fingerprint); a run with
                                 other settings is refused
  units/unit-NNNNN.tfrecord      tf.train.Example per captioned clip (fields as the JSONL rows)
  units/unit-NNNNN.jsonl         {"index", "clip_id", "path" (relative to the corpus root),
                                 "segment" ([start_s, end_s] or null), "alt_text", "captions" [K],
                                 "mean_logprobs" [K], "num_tokens" [K]
                                 (+ "frame_captions" [K][k] in frame_captioner mode)}
  units/unit-NNNNN.rejects.jsonl bad clips of the unit (data.rejects format: source, item, reason,
                                 detail), e.g. missing_file, empty_file, corrupt, too_short
  units/unit-NNNNN.meta.json     written LAST: its presence marks the unit finished
  input_rejects.jsonl            bad corpus rows (malformed, invalid UTF-8, duplicate ids)
  runs/run-<time>-p<i>.json      one record per process run (units, clips/s, tokens/s)
  rejects.jsonl, manifest.json   merged rejects; provenance + counts + caption statistics; written
                                 when every unit is finished
Every file is written to a temporary name and renamed into place, so a killed job leaves only whole
units; rerunning the same command skips them (exactly once). Bad clips are skipped and counted; the
job finishes.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import itertools
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import sentencepiece as spm
from absl import logging

from data import corpus as corpus_lib
from data import rejects as rj
from data import video
from data import watchdog
from viit_jax import aot
from viit_jax import caption_sets
from viit_jax import decoding
from viit_jax import paths
from viit_jax import records as records_lib
from viit_jax import runtime
from viit_jax.models import vlm as vlm_lib


MODES = ("viit", "frame_captioner")


class Preempted(RuntimeError):
  """SIGTERM: the units in progress were written and the job stopped, without a manifest."""


class UnitFailed(RuntimeError):
  """Clips were rejected beyond config.max_unit_reject_rate (circuit breaker): the video store is
  likely unreachable or the corpus file points at the wrong root."""


class Breaker:
  """The reject rate over the latest units of this run that hold at least `min_clips` clips.

  A unit is checked before it is written, with the units before it that fill the window: a
  small last unit of bad clips alone does not trip it, a store that went away does.
  """

  def __init__(self, max_rate: float, min_clips: int):
    self.max_rate, self.min_clips = max_rate, min_clips
    self._units: collections.deque[tuple[int, int]] = collections.deque()  # (clips, rejected)

  def check(self, u: int, clips: int, rejected: list[rj.RejectRecord]) -> None:
    """Adds unit u; raises UnitFailed if the window's reject rate passes the threshold."""
    self._units.append((clips, len(rejected)))
    while len(self._units) > 1 and sum(n for n, _ in self._units) - self._units[0][0] \
        >= self.min_clips:
      self._units.popleft()
    total, bad = sum(n for n, _ in self._units), sum(b for _, b in self._units)
    if rejected and total >= self.min_clips and bad > self.max_rate * total:
      reasons = dict(collections.Counter(r.reason for r in rejected))
      raise UnitFailed(
          f"autolabel: {bad} of the last {total} clips were rejected (unit {u}: {reasons}, e.g. "
          f"{rejected[0].item}: {rejected[0].detail}), more than max_unit_reject_rate="
          f"{self.max_rate}; unit {u} and the manifest are not written. Check the video store "
          "and the corpus' root, then rerun the same command.")
SEPARATOR = "\n"  # The prompt/answer separator of the VLM sequence (data.preprocessors).


# ------------------------------------------------------------------------------------------------
# Tokenizer (SentencePiece directly: the job never imports TensorFlow).


class Tokenizer:
  """The captioning prompt as model tokens, and generated ids back to text."""

  def __init__(self, path: paths.PathLike):
    if not paths.path(path).is_file():
      raise FileNotFoundError(f"SentencePiece model not found: {path}")
    self.path = paths.name(path)
    self._proto = paths.path(path).read_bytes()
    self.sp = spm.SentencePieceProcessor(model_proto=self._proto)
    self.size = int(self.sp.get_piece_size())
    self.bos_id, self.eos_id = int(self.sp.bos_id()), int(self.sp.eos_id())
    self.pad_id = max(int(self.sp.pad_id()), 0)
    if self.bos_id < 0 or self.eos_id < 0:
      raise ValueError(f"tokenizer {path} lacks BOS/EOS ids")

  def separator_ids(self) -> tuple[int, ...]:
    """Ids of "\\n" exactly as data.preprocessors.separator_ids computes them."""
    piece = self.sp.piece_to_id(SEPARATOR)
    if piece != self.sp.unk_id():
      return (int(piece),)
    ids = tuple(int(i) for i in self.sp.encode(SEPARATOR) if self.sp.id_to_piece(i) != "\u2581")
    if not ids or self.sp.unk_id() in ids:
      raise ValueError(f"tokenizer {self.path} cannot encode '\\n'")
    return ids

  def prompt_ids(self, prompt: str) -> list[int]:
    """[BOS] + prompt + "\\n": the decoding prompt of the VLM sequence convention."""
    return [self.bos_id, *map(int, self.sp.encode(prompt)), *self.separator_ids()]

  def text(self, ids: np.ndarray) -> str:
    """Generated ids int[L] -> text (up to EOS, padding dropped)."""
    return self.sp.decode(decoding.strip(ids, self.eos_id, self.pad_id)).strip()

  def sha256(self) -> str:
    return hashlib.sha256(self._proto).hexdigest()


# ------------------------------------------------------------------------------------------------
# Captioning one batch.


@dataclasses.dataclass
class Decoded:
  """A clip whose frames decoded: uint8[F, R, R, 3] (F = T, or k in frame_captioner mode)."""
  clip: corpus_lib.Clip
  frames: np.ndarray


def decode_clip(clip: corpus_lib.Clip, num_frames: int, fps: float, res: int
                ) -> Decoded | rj.RejectRecord:
  """The clip's frames (data.video's centred window), or its reject record."""
  frames = video.decode_or_error(clip.path, num_frames, fps, res, segment=clip.segment)
  if isinstance(frames, video.VideoError):
    return rj.RejectRecord("video", clip.rel_path, frames.reason,
                           f"clip {clip.clip_id}: {frames.detail}")
  return Decoded(clip, frames)


class Captioner:
  """Runs the decoder on a batch of decoded clips and builds the output rows."""

  def __init__(self, decoder: decoding.Decoder, params: Any, tokenizer: Tokenizer, prompt: str,
               mode: str, batch_size: int, seed: int, separator: str):
    self.decoder, self.params, self.tokenizer = decoder, params, tokenizer
    self.mode, self.batch_size, self.seed, self.separator = mode, batch_size, seed, separator
    self.prompt = np.asarray(tokenizer.prompt_ids(prompt), np.int32)

  def __call__(self, items: Sequence[Decoded]) -> tuple[list[dict[str, Any]], int]:
    """Rows for `items` (at most batch_size; padded here) and the number of generated tokens."""
    n = len(items)
    if not 0 < n <= self.batch_size:
      raise ValueError(f"batch of {n} clips, expected 1..{self.batch_size}")
    frames = np.stack([it.frames for it in items])  # [n, F, R, R, 3]
    f = frames.shape[1]
    pad = self.batch_size - n
    if pad:
      frames = np.concatenate([frames, np.zeros((pad,) + frames.shape[1:], np.uint8)])
    index = np.array([it.clip.index for it in items] + [-1] * pad, np.int64)
    if self.mode == "viit":
      ids = index
    else:  # One row per frame, T=1; frame j of clip i is example i * k + j.
      frames = frames.reshape((-1, 1) + frames.shape[2:])
      ids = (index[:, None] * f + np.arange(f)[None, :]).reshape(-1)
    rows_in = frames.shape[0]
    inputs = {"frames": frames, "tokens": np.tile(self.prompt[None], (rows_in, 1)),
              "mask_input": np.ones((rows_in, len(self.prompt)), np.int32)}
    out = self.decoder(self.params, inputs, np.where(ids < 0, 0, ids).astype(np.int32), self.seed)
    text = self.tokenizer.text
    rows = []
    for b, it in enumerate(items):
      row: dict[str, Any] = {
          "index": it.clip.index, "clip_id": it.clip.clip_id, "path": it.clip.rel_path,
          "segment": list(it.clip.segment) if it.clip.segment else None,
          "alt_text": it.clip.alt_text}
      if self.mode == "viit":
        row["captions"] = [text(t) for t in out.tokens[b]]
        row["mean_logprobs"] = [float(x) for x in out.mean_logprob[b]]
        row["num_tokens"] = [int(x) for x in out.lengths[b]]
      else:
        sl = slice(b * f, (b + 1) * f)
        toks, lens, lps = out.tokens[sl], out.lengths[sl], out.logprobs[sl]  # [k, K, ...]
        per_sample = [[text(toks[j, s]) for j in range(f)] for s in range(toks.shape[1])]
        row["frame_captions"] = per_sample
        row["captions"] = [self.separator.join(dict.fromkeys(c for c in caps if c))
                           for caps in per_sample]
        total = lens.sum(axis=0)
        row["mean_logprobs"] = [float(x) for x in lps.sum(axis=(0, 2)) / np.maximum(total, 1)]
        row["num_tokens"] = [int(x) for x in total]
      rows.append(row)
    tokens = int(out.lengths[:n if self.mode == "viit" else n * f].sum())
    return rows, tokens


# ------------------------------------------------------------------------------------------------
# Settings, progress, manifest.


def decode_config(config: ml_collections.ConfigDict, tokenizer: Tokenizer, model_vocab: int
                  ) -> decoding.DecodeConfig:
  return aot.decode_settings(config, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
                             valid_vocab_size=tokenizer.size if tokenizer.size < model_vocab else 0)


class Progress:
  """The progress line: clips done, clips/s, generated tokens/s, ETA (this process)."""

  def __init__(self, prefix: str, total_clips: int, every_s: float):
    self.prefix, self.total, self.every_s = prefix, total_clips, every_s
    self.start = self.last = time.time()
    self.clips = self.tokens = 0

  def update(self, clips: int, tokens: int, *, unit: str = "", force: bool = False) -> None:
    self.clips += clips
    self.tokens += tokens
    now = time.time()
    if not force and now - self.last < self.every_s:
      return
    self.last = now
    dt = max(now - self.start, 1e-9)
    rate = self.clips / dt
    eta = (self.total - self.clips) / rate if rate > 0 else math.inf
    print(f"{self.prefix}{unit} | clips {self.clips}/{self.total} | {rate:.2f} clips/s | "
          f"{self.tokens / dt:.1f} tokens/s | ETA {runtime.format_eta(eta)}", flush=True)

  def rates(self) -> dict[str, float]:
    dt = max(time.time() - self.start, 1e-9)
    return {"clips": self.clips, "tokens": self.tokens, "seconds": dt,
            "clips_per_s": self.clips / dt, "tokens_per_s": self.tokens / dt}


# ------------------------------------------------------------------------------------------------
# The job.


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {config.mode!r}")
  if config.unit_size < 1 or config.batch_size < 1:
    raise ValueError(f"unit_size and batch_size must be >= 1, got {config.unit_size}, "
                     f"{config.batch_size}")
  if config.data.decode_workers < 1:
    raise ValueError("data.decode_workers must be >= 1")
  if not 0.0 <= config.max_unit_reject_rate <= 1.0:
    raise ValueError(f"max_unit_reject_rate {config.max_unit_reject_rate} is not in [0, 1]")
  if config.breaker_min_clips < 1:
    raise ValueError(f"breaker_min_clips must be >= 1, got {config.breaker_min_clips}")
  if not 0 <= config.shard_index < config.num_shards:
    raise ValueError(f"shard_index {config.shard_index} is not in [0, num_shards "
                     f"{config.num_shards})")


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike[str]
        ) -> dict[str, Any] | None:
  """Captions (or resumes) config.version under `workdir`; the manifest once complete."""
  # Setup: corpus, tokenizer, checkpoint, settings.
  started = time.time()
  _check_config(config)
  pid, nproc = jax.process_index(), jax.process_count()
  log = print if pid == 0 else (lambda *a, **k: None)
  corpus = corpus_lib.corpus_from_config(config.corpus)
  corpus_scan = corpus_lib.scan(corpus, config.unit_size)
  if corpus_scan.num_clips == 0:
    raise ValueError(f"no usable clip in {corpus.root / corpus.file} (rejected rows: "
                     f"{corpus_scan.rejects.counts})")
  vocab_path = config.vocab_path
  if not vocab_path:
    if corpus.format != "demo":
      raise ValueError("vocab_path is required (the VLM's SentencePiece model)")
    vocab_path = os.path.join(config.corpus.world_dir, "spm", "demo.model")
  tokenizer = Tokenizer(vocab_path)
  source = runtime.checkpoint_source(config.init_from, config.init_step)
  model_cfg = aot.decode_model_config(config, source)
  res = model_cfg.img.image_size
  fc = config.mode == "frame_captioner"
  num_frames = aot.cfg_frames(config)
  fps = config.frame_captioner.fps if fc else config.data.fps
  dcfg = decode_config(config, tokenizer, model_cfg.llm.vocab_size)
  trained_frames = source.trained("data", "num_frames")
  if not fc and trained_frames and trained_frames != num_frames:
    logging.warning("the checkpoint was trained on %s frames, captioning with %d",
                    trained_frames, num_frames)
  settings = {
      "version": config.version, "mode": config.mode, "seed": int(config.seed),
      "checkpoint": {"path": source.path, "step": source.step,
                     "experiment": source.meta.get("experiment"),
                     "variant": config.model.variant or source.trained("model", "variant")},
      "model": {"vocab_size": model_cfg.llm.vocab_size, "dtype": model_cfg.llm.dtype,
                "param_dtype": config.model.param_dtype or "float32",
                "image_size": model_cfg.img.image_size},
      "prompt": config.prompt, "prompt_ids": tokenizer.prompt_ids(config.prompt),
      "tokenizer": {"path": tokenizer.path, "sha256": tokenizer.sha256()},
      "decode": dcfg.settings(),
      "frames": {"num_frames": int(num_frames), "fps": float(fps), "res": int(res),
                 "per_frame": fc},
      "frame_captioner_separator": config.frame_captioner.separator if fc else None,
      "unit_size": int(config.unit_size),
      "corpus": {"format": corpus.format, "video_root": str(corpus.root),
                 "file": str(corpus.root / corpus.file), "path_template": corpus.path_template,
                 "full_videos": corpus.full_videos if corpus.format == "internvid" else None,
                 "limit": corpus.limit, "num_clips": corpus_scan.num_clips,
                 "num_units": corpus_scan.num_units, "fingerprint": corpus_scan.fingerprint},
  }
  out_dir = paths.path(workdir) / config.version
  (out_dir / "runs").mkdir(parents=True, exist_ok=True)
  records_lib.bind_settings(out_dir, settings)
  paths.write_atomic(out_dir / "input_rejects.jsonl",
                     paths.jsonl_bytes(dataclasses.asdict(r) for r in corpus_scan.rejects.records))
  units = caption_sets.Units(out_dir)
  shard, shards = int(config.shard_index), int(config.num_shards)
  mine = [u for u in range(corpus_scan.num_units)
          if u % shards == shard and (u // shards) % nproc == pid]
  todo = {u for u in mine if units.meta(u) is None}
  for u in todo:  # Temporary files a killed run left in units only this process writes.
    for stale in units.units_dir.glob(f".unit-{u:05d}.*.tmp-*"):
      stale.unlink(missing_ok=True)
  log(f"autolabel {config.mode}: {corpus_scan.num_clips} clips ({corpus_scan.rejects.total} rows "
      f"rejected) in {corpus_scan.num_units} units of {config.unit_size}; job shard {shard} of "
      f"{shards}; {nproc} process(es); "
      f"checkpoint {source.path} step {source.step}; decode {dcfg.settings()}", flush=True)

  # Model: this process's devices, parameters restored into their shardings.
  mesh = decoding.local_mesh(dict(config.mesh))
  params = runtime.load_params(model_cfg, source, mesh,
                               tuple(tuple(r) for r in config.init_assignment_map),
                               param_dtype=config.model.param_dtype)
  decoder = decoding.Decoder(decoding.VLMAdapter(vlm_lib.VLM(model_cfg)), dcfg, mesh)
  rows_per_clip = num_frames if fc else 1
  if (config.batch_size * rows_per_clip) % decoder.batch_divisor:
    raise ValueError(f"batch_size {config.batch_size} (x {rows_per_clip} rows per clip) is not a "
                     f"multiple of this process's {decoder.batch_divisor} devices")
  captioner = Captioner(decoder, params, tokenizer, config.prompt, config.mode,
                        int(config.batch_size), int(config.seed),
                        config.frame_captioner.separator)
  todo_clips = sum(min(config.unit_size, corpus_scan.num_clips - u * config.unit_size)
                   for u in todo)
  print(f"autolabel p{pid}/{nproc}: {len(mine)} units, {len(mine) - len(todo)} already finished, "
        f"{len(todo)} to do ({todo_clips} clips); mesh {dict(mesh.shape)}", flush=True)

  # Loop: my unfinished units; video decoding of unit u+1 overlaps the model on unit u.
  progress = Progress(f"autolabel p{pid}/{nproc}", todo_clips, config.log_every_s)
  written, bad = 0, 0
  breaker = Breaker(config.max_unit_reject_rate, config.breaker_min_clips)
  pass2 = rj.Rejects(corpus.source)  # Pass 1 recorded these rows already.
  my_units = ((u, clips) for u, clips in corpus_lib.units_of(corpus.clips(pass2) if todo else (),
                                                   config.unit_size) if u in todo)
  pool = watchdog.Pool(config.data.decode_workers)
  with runtime.SigtermFlag() as stop:
    def submit(unit):
      u, clips = unit
      return u, clips, [pool.submit(decode_clip, c, num_frames, fps, int(res)) for c in clips]

    pending = None
    for unit in itertools.chain(my_units, [None]):  # None: caption the last pending unit.
      nxt = submit(unit) if unit is not None and not stop else None
      if pending is not None:
        bad += _caption_unit(*pending, units=units, captioner=captioner, progress=progress,
                             breaker=breaker, time_limit_s=config.data.decode_time_limit_s)
        written += 1
      pending = nxt
      if stop:  # SIGTERM: the unit in progress is written; stop before the next one.
        if pending is not None:
          pool.cancel(pending[2])
        break
    preempted = bool(stop)

  # Finish: this run's record; the manifest once every process's units are written.
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
  record = {"host": socket.gethostname(), "pid": os.getpid(), "process": pid,
            "num_processes": nproc, "devices": len(jax.local_devices()),
            "batch_size": int(config.batch_size), "units_written": written,
            "units_skipped": len(mine) - len(todo), "clips_rejected": bad,
            "preempted": preempted, **progress.rates(), "total_seconds": time.time() - started}
  paths.write_json(out_dir / "runs" / f"run-{stamp}-p{pid}.json", record)
  print(f"autolabel p{pid}/{nproc}: wrote {written} units ({record['clips']} clips, {bad} of "
        f"them rejected) in {record['seconds']:.1f}s: {record['clips_per_s']:.2f} clips/s, "
        f"{record['tokens_per_s']:.1f} tokens/s", flush=True)
  if preempted:  # No barrier: the other processes stop (or finish) on their own.
    raise Preempted(f"autolabel p{pid}/{nproc}: stopped by SIGTERM after {written} units; rerun "
                    "the same command to resume")
  if nproc > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("autolabel_units_written")
  manifest = None
  if pid == 0:
    manifest = caption_sets.finalize(units, corpus_scan.num_units, settings, corpus_scan.rejects)
    if manifest is None:
      log(f"autolabel: some units are still missing (another process or job shard has not "
          f"finished); rerun it to complete {out_dir}", flush=True)
    else:
      log(f"autolabel: complete: {out_dir / 'manifest.json'}: {manifest['num_captioned']} clips "
          f"captioned, {manifest['num_rejected']} rejected {manifest['rejects_per_reason']}; "
          f"motion-verb share {manifest['stats']['first_caption']['motion_verb_share']:.3f}",
          flush=True)
  return manifest


def _caption_unit(u: int, clips: list[corpus_lib.Clip], jobs: list[watchdog.Job], *,
                  units: caption_sets.Units, captioner: Captioner, progress: Progress,
                  breaker: Breaker, time_limit_s: float) -> int:
  """Captions one unit (batches in clip order) and writes it; returns its number of bad clips.

  A decode still running after `time_limit_s` is abandoned and its clip rejected as
  decode_timeout. Raises UnitFailed, writing nothing, when the breaker trips.
  """
  t0 = time.time()
  rows: list[dict[str, Any]] = []
  rejected: list[rj.RejectRecord] = []
  batch: list[Decoded] = []
  tokens = 0

  def flush():
    nonlocal batch, tokens
    out, n_tok = captioner(batch)
    rows.extend(out)
    tokens += n_tok
    progress.update(len(batch), n_tok, unit=f" unit {u}")
    batch = []

  for clip, job in zip(clips, jobs):
    try:
      item = job.result(time_limit_s)
    except watchdog.Abandoned as e:
      item = rj.RejectRecord("video", clip.rel_path, rj.DECODE_TIMEOUT,
                             f"clip {clip.clip_id}: {e} (the decode watchdog)")
    if isinstance(item, rj.RejectRecord):
      rejected.append(item)
      progress.update(1, 0)
      continue
    batch.append(item)
    if len(batch) == captioner.batch_size:
      flush()
  if batch:
    flush()
  breaker.check(u, len(clips), rejected)
  meta = {"unit": u, "clip_ids": [c.clip_id for c in clips], "num_clips": len(clips),
          "num_captioned": len(rows), "num_rejected": len(rejected),
          "rejects": dict(collections.Counter(r.reason for r in rejected)),
          "tokens": tokens, "seconds": time.time() - t0, "process": jax.process_index()}
  units.write(u, rows, rejected, meta)
  progress.update(0, 0, unit=f" unit {u} written", force=True)
  return len(rejected)


def main(args: runtime.Args) -> int:
  try:
    run(args.config, args.workdir)
  except Preempted as e:
    print(e, flush=True)
    return runtime.EXIT_PREEMPTED
  except UnitFailed as e:
    print(e, file=sys.stderr, flush=True)
    return runtime.EXIT_BACKEND_FAILED
  return 0


def compile_only(config: ml_collections.ConfigDict) -> int:
  """--compile_only: the decode step on this process's devices (the checkpoint's model when
  init_from names one, else model.variant and data.res), with a 16-token prompt."""
  def program() -> list[aot.Program]:
    source = (runtime.checkpoint_source(config.init_from, config.init_step) if config.init_from
              else None)
    return [aot.decode_program(config, decoding.local_mesh(dict(config.mesh)),
                               model_cfg=aot.decode_model_config(config, source))]

  return aot.print_reports(program)


def lock_name(config: ml_collections.ConfigDict) -> str:
  """Job shards of one version share the workdir, each holding its own lock."""
  return f".lock-shard{config.shard_index}of{config.num_shards}" if config.num_shards > 1 else ""


if __name__ == "__main__":
  runtime.run(main, compile_only=compile_only, lock_name=lock_name)
