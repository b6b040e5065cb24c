"""What the demo models can learn to see, per training step: shape, motion and colour-change probes.

  python -m viit_jax.demo.perception --world=runs/demo/world \
      [--probes=shape_head,shape_vlm,motion_vlm,colour_vlm,event_vlm] [--steps=600] \
      [--eval_every=200] \
      [--init=runs/demo/phase1] [--train=llm|all] [--extra_worlds=DIR,DIR]

Each probe trains a fresh copy of a demo model on single-actor clips of the world (ground truth from
world/clips.jsonl; 80% train, 20% held out, fixed seeded split) and prints held-out and train
accuracy every `--eval_every` steps, then a summary table:
  shape_head  the demo VLM's ViT (variant `demo`, 32 px, T=1), mean-pooled, a linear 4-way head:
              can the image encoder learn shape? (single-actor stills and one frame of each clip)
  shape_vlm   the whole demo VLM on the same frames, caption "a SIZE COLOUR SHAPE", trained as
              phase 0 (configs/demo_phase0.py's optimizer, the trainer's loss): does shape get
              through the captioning LM? (accuracy of the shape word, teacher-forced, argmax over
              the 4 shape words)
  motion_vlm  the demo VLM on 8 frames at 2 fps of clips whose moves all go one way, caption "it
              moves DIR", started from `--init` (a VLM trainer workdir; '' = fresh), optimised as
              phase 2 (configs/demo_phase2.py) and training `--train` (llm: the LM only, as phase 2;
              all: ViT too): can it read direction from the concatenated frame tokens? (accuracy of
              the direction word, as above)
  colour_vlm  as motion_vlm, on clips with exactly one colour change, caption "it turns COLOUR":
              can it read an appearance change in time order (the colour the clip ends with)?
  event_vlm   as motion_vlm, on clips with exactly one event, caption "it VERB" (moves, grows,
              shrinks, appears, disappears, turns, bounces): can it tell what happens, the thing a
              video caption has and a frame caption does not?
Chance is 25% for the shape and direction probes, 20% for colour_vlm; event_vlm prints its
majority-class share (the clips' kinds are not balanced). docs/demo_results.md quotes these
figures; they are measurements of learning speed on CPU-sized models, not tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import sentencepiece as spm

from data import demo_world
from data import preprocessors as pp
from data import video
from viit_jax import checkpoints
from viit_jax import optim
from viit_jax.models import variants
from viit_jax.models import vit as vit_lib
from viit_jax.models import vlm as vlm_lib

PROBES = ("shape_head", "shape_vlm", "motion_vlm", "colour_vlm", "event_vlm")
RES = 32
SHAPES = demo_world.SHAPES
DIRECTIONS = tuple(demo_world.DIRECTIONS)
COLOURS = tuple(demo_world.COLOURS)
# Event kind -> the verb of event_vlm's caption (single pieces of the demo vocabulary).
EVENT_VERBS = demo_world.EVENT_VERBS
EVENTS = tuple(EVENT_VERBS.values())
WARMUP = 50  # shape_head's linear warm-up steps (the VLM probes use their phase's).


def _records(worlds: Sequence[pathlib.Path]) -> list[tuple[pathlib.Path, dict[str, Any]]]:
  """Single-actor records (not NExT-QA) of every world, in file order."""
  return [(w, rec) for w in worlds for rec in demo_world.read_records(w)
          if len(rec["actors"]) == 1 and rec["dataset"] != "nextqa"]


def shape_data(worlds: Sequence[pathlib.Path]) -> tuple[np.ndarray, list[str], np.ndarray]:
  """(frames uint8[N, 1, R, R, 3], captions 'a SIZE COLOUR SHAPE', shape index int[N]): each still,
  and one seeded frame of each clip."""
  frames, captions, labels = [], [], []
  rng = np.random.default_rng(0)
  for w, rec in _records(worlds):
    path = w / rec["file"]
    if rec["dataset"] == "stills":
      frames.append(video.load_image(path, RES)[0])
    else:
      frames.append(video.decode_frames(path, 8, 2.0, RES)[rng.integers(0, 8)])
    a = rec["actors"][0]
    captions.append(f"a {a['size']} {a['colour']} {a['shape']}")
    labels.append(SHAPES.index(a["shape"]))
  return np.stack(frames)[:, None], captions, np.asarray(labels)


def _clip_data(worlds: Sequence[pathlib.Path], word_of: Callable[[dict[str, Any]], str | None],
               template: str, words: Sequence[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
  """(frames uint8[N, 8, R, R, 3], captions template.format(word), word index int[N]) of the
  single-actor clips (8 frames at 2 fps) whose record `word_of` maps to a word (None: left out)."""
  frames, captions, labels = [], [], []
  for w, rec in _records(worlds):
    word = None if rec["dataset"] == "stills" else word_of(rec)
    if word is None:
      continue
    frames.append(video.decode_frames(w / rec["file"], 8, 2.0, RES))
    captions.append(template.format(word))
    labels.append(words.index(word))
  return np.stack(frames), captions, np.asarray(labels)


def _one_direction(rec: dict[str, Any]) -> str | None:
  moves = {e["direction"] for e in rec["events"] if e["kind"] == "move"}
  return moves.pop() if len(moves) == 1 else None


def _final_colour(rec: dict[str, Any]) -> str | None:
  changes = [e["to"] for e in rec["events"] if e["kind"] == "change_colour"]
  return changes[0] if len(changes) == 1 else None


def motion_data(worlds: Sequence[pathlib.Path]) -> tuple[np.ndarray, list[str], np.ndarray]:
  """Captions 'it moves DIR' of the clips whose moves all go one way (see _clip_data)."""
  return _clip_data(worlds, _one_direction, "it moves {}", DIRECTIONS)


def colour_data(worlds: Sequence[pathlib.Path]) -> tuple[np.ndarray, list[str], np.ndarray]:
  """Captions 'it turns COLOUR' of the clips with exactly one colour change (the colour the actor
  ends with; see _clip_data)."""
  return _clip_data(worlds, _final_colour, "it turns {}", COLOURS)


def _one_event(rec: dict[str, Any]) -> str | None:
  events = rec["events"]
  return EVENT_VERBS.get(events[0]["kind"]) if len(events) == 1 else None


def event_data(worlds: Sequence[pathlib.Path]) -> tuple[np.ndarray, list[str], np.ndarray]:
  """Captions 'it VERB' of the clips with exactly one event (see _clip_data)."""
  return _clip_data(worlds, _one_event, "it {}", EVENTS)


# The probes on 8-frame clips, trained as phase 2: name -> (data, answer words, what the clips are).
CLIP_PROBES = {
    "motion_vlm": (motion_data, DIRECTIONS, "single-actor one-direction clips, per direction"),
    "colour_vlm": (colour_data, COLOURS,
                   "single-actor clips with one colour change, per final colour"),
    "event_vlm": (event_data, EVENTS, "single-actor one-event clips, per kind"),
}


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
  perm = np.random.default_rng(1).permutation(n)
  return perm[:n * 4 // 5], perm[n * 4 // 5:]


@dataclasses.dataclass(frozen=True)
class Probe:
  """A model + optimizer + data: `step(idx)` trains on rows idx, `accuracy(idx)` scores rows."""
  step: Callable[[np.ndarray], float]
  accuracy: Callable[[np.ndarray], float]


def shape_head_probe(frames: np.ndarray, labels: np.ndarray, lr: float, steps: int) -> Probe:
  """The demo ViT (mean-pooled, 4-way linear head), AdamW, warm-up + cosine over `steps`."""
  vit_cfg = variants.get_config("demo", {"img.num_frames": 1}).img
  model = vit_lib.ViT(dataclasses.replace(vit_cfg, pool_type="gap", head_features=len(SHAPES)))
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), jnp.asarray(frames[:2]))["params"])
  logits = lambda p, b: model.apply({"params": p}, b["frames"])[:, 0]  # noqa: E731  [B, 4]

  def loss(p, _, b):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits(p, b).astype(jnp.float32), b["labels"]).mean()

  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, WARMUP, max(steps, WARMUP + 1))
  return _make_probe(params, optax.adamw(schedule, b2=0.98, weight_decay=1e-4), loss,
                     lambda p, _, b: logits(p, b).argmax(-1), {"frames": frames}, labels)


def _tokens(sp: spm.SentencePieceProcessor, captions: Sequence[str]
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Batch arrays as the demo tasks build them (BOS + caption prompt + newline | caption + EOS;
  tokens, mask_ar, mask_loss, mask_input int32[N, L]) and, per row, the logits index that predicts
  the caption's last word."""
  prefix = [sp.bos_id()] + sp.encode(pp.CAPTION_PROMPT) + sp.encode("\n")
  rows = [sp.encode(c) for c in captions]
  length = len(prefix) + max(len(r) for r in rows) + 1
  out = {k: np.zeros((len(rows), length), np.int32)
         for k in ("tokens", "mask_ar", "mask_loss", "mask_input")}
  where = np.zeros(len(rows), np.int32)
  for i, r in enumerate(rows):
    t = prefix + r + [sp.eos_id()]
    out["tokens"][i, :len(t)] = t
    out["mask_ar"][i, len(prefix):len(t)] = 1
    out["mask_loss"][i, len(prefix):len(t)] = 1
    out["mask_input"][i, :len(t)] = 1
    where[i] = len(prefix) + len(r) - 2
  return out, where


def phase_optim(phase: str, train: str, steps: int) -> ml_collections.ConfigDict:
  """The `optim` section of configs/demo_<phase>.py (its recipe, LR and warm-up), with `freeze`
  set by `train`: all = nothing frozen, llm = the vision tower frozen (as phase 2)."""
  config = importlib.import_module(f"configs.demo_{phase}").get_config(f"train.total_steps={steps}")
  with config.unlocked():
    config.optim.freeze = "" if train == "all" else "img/.*"
  return config.optim


def vlm_probe(frames: np.ndarray, captions: Sequence[str], labels: np.ndarray, words: Sequence[str],
              sp: spm.SentencePieceProcessor, *, optim_config: ml_collections.ConfigDict,
              steps: int, init: str) -> Probe:
  """The demo VLM on `frames` with the trainer's loss (viit_jax.train.vlm_loss) on `captions`,
  optimised as `optim_config` says (viit_jax.optim: recipe, schedule over `steps`, freezing);
  accuracy = argmax over `words` (single pieces) at the last caption word."""
  batch, where = _tokens(sp, captions)
  word_ids = [sp.encode(w) for w in words]
  if any(len(i) != 1 for i in word_ids):
    raise ValueError(f"probe words must be single pieces, got {dict(zip(words, word_ids))}")
  word_ids = jnp.asarray([i[0] for i in word_ids])
  cfg = variants.get_config("demo", {"img.num_frames": frames.shape[1],
                                     "llm.seq_len": batch["tokens"].shape[1]})
  model = vlm_lib.VLM(cfg)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), jnp.asarray(frames[:2]),
                                    *(jnp.asarray(batch[k][:2]) for k in
                                      ("tokens", "mask_ar", "mask_input")))["params"])
  if init:
    params, _ = checkpoints.load_params_into(params, init)
  trainable, frozen = optim.split_params(params, optim_config.freeze)
  tx, _ = optim.make_optimizer(optim_config, steps)

  def loss(p, fixed, b):
    total, count, _ = vlm_lib.batch_loss(optim.merge_params(p, fixed), b, None, model=model)
    return total / count

  def predict(p, fixed, b):
    logits = model.apply({"params": optim.merge_params(p, fixed)}, b["frames"], b["tokens"],
                         b["mask_ar"], b["mask_input"])
    return logits[jnp.arange(logits.shape[0]), b["where"]][:, word_ids].argmax(-1)

  return _make_probe(trainable, tx, loss, predict,
                     {"frames": frames, **batch, "where": where}, labels, frozen=frozen)


def _make_probe(params: Any, tx: optax.GradientTransformation,
                loss: Callable[[Any, Any, dict[str, jax.Array]], jax.Array],
                predict: Callable[[Any, Any, dict[str, jax.Array]], jax.Array],
                data: dict[str, np.ndarray], labels: np.ndarray, frozen: Any = None) -> Probe:
  """`loss(params, frozen, batch)` and `predict(params, frozen, batch) -> int[B]` over dict batches
  of `data` rows (plus "labels"); only `params` train. `frozen` goes into the compiled steps as an
  argument (as a closure constant it would be folded into the program, which compiles far slower).
  """
  data = {**data, "labels": labels}
  frozen = {} if frozen is None else frozen
  state = {"params": params, "opt": tx.init(params)}

  @jax.jit
  def train_step(params, frozen, opt, b):
    value, grads = jax.value_and_grad(loss)(params, frozen, b)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, value

  predict_jit = jax.jit(predict)
  take = lambda idx: {k: jnp.asarray(v[idx]) for k, v in data.items()}  # noqa: E731

  def step(idx: np.ndarray) -> float:
    state["params"], state["opt"], value = train_step(state["params"], frozen, state["opt"],
                                                      take(idx))
    return float(value)

  def accuracy(idx: np.ndarray) -> float:
    hits = [np.asarray(predict_jit(state["params"], frozen, take(idx[i:i + 256])))
            == labels[idx[i:i + 256]] for i in range(0, len(idx), 256)]
    return float(np.concatenate(hits).mean())

  return Probe(step=step, accuracy=accuracy)


def run(probe: Probe, n: int, *, steps: int, batch_size: int, eval_every: int, name: str
        ) -> list[dict[str, float]]:
  """Trains `steps` steps on seeded batches of the train rows; held-out / train accuracy rows."""
  train, held_out = _split(n)
  rng = np.random.default_rng(0)
  rows, start = [], time.time()
  for s in range(1, steps + 1):
    loss = probe.step(rng.choice(train, batch_size))
    if s % eval_every == 0 or s == steps:
      row = {"step": s, "loss": loss, "held_out": probe.accuracy(held_out),
             "train": probe.accuracy(train[:len(held_out)]), "seconds": time.time() - start}
      rows.append(row)
      print(f"[{name}] step {s}/{steps} | loss {loss:.3f} | held-out acc {row['held_out']:.1%} | "
            f"train acc {row['train']:.1%} | {row['seconds']:.0f}s", flush=True)
  return rows


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, float]]]:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--world", required=True, help="a data.demo_world output directory")
  ap.add_argument("--extra_worlds", default="", help="more worlds' clips (comma-separated)")
  ap.add_argument("--probes", default=",".join(PROBES))
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--batch_size", type=int, default=0, help="0 = 32 (shape), 16 (motion, colour)")
  ap.add_argument("--eval_every", type=int, default=200)
  ap.add_argument("--init", default="",
                  help="motion/colour_vlm: a VLM trainer workdir ('' = fresh)")
  ap.add_argument("--train", default="llm", choices=("llm", "all"),
                  help="motion/colour_vlm: what trains")
  args = ap.parse_args(argv)
  probes = [p for p in args.probes.split(",") if p]
  if unknown := set(probes) - set(PROBES):
    raise SystemExit(f"unknown probes {sorted(unknown)}; known: {PROBES}")
  worlds = [pathlib.Path(args.world)] + [pathlib.Path(w) for w in args.extra_worlds.split(",") if w]
  for w in worlds:
    if not (w / "world" / "clips.jsonl").is_file():
      raise SystemExit(f"{w} is not a demo world (no world/clips.jsonl)")
  sp = spm.SentencePieceProcessor(model_file=str(worlds[0] / "spm" / "demo.model"))
  results: dict[str, list[dict[str, float]]] = {}
  common = {"steps": args.steps, "eval_every": args.eval_every}
  if {"shape_head", "shape_vlm"} & set(probes):
    frames, captions, labels = shape_data(worlds)
    print(f"shape data: {len(labels)} single-actor frames, per shape {np.bincount(labels)}")
    if "shape_head" in probes:
      results["shape_head"] = run(shape_head_probe(frames, labels, 3e-3, args.steps), len(labels),
                                  batch_size=args.batch_size or 32, name="shape_head", **common)
    if "shape_vlm" in probes:
      p = vlm_probe(frames, captions, labels, SHAPES, sp, init="", steps=args.steps,
                    optim_config=phase_optim("phase0", "all", args.steps))
      results["shape_vlm"] = run(p, len(labels), batch_size=args.batch_size or 32,
                                 name="shape_vlm", **common)
  for name, (data_fn, words, what) in CLIP_PROBES.items():
    if name not in probes:
      continue
    frames, captions, labels = data_fn(worlds)
    counts = np.bincount(labels, minlength=len(words))
    print(f"{name} data: {len(labels)} {what} {counts} (majority {counts.max() / len(labels):.1%})")
    p = vlm_probe(frames, captions, labels, words, sp, init=args.init, steps=args.steps,
                  optim_config=phase_optim("phase2", args.train, args.steps))
    results[name] = run(p, len(labels), batch_size=args.batch_size or 16,
                        name=f"{name} ({args.train})", **common)
  print("\n| probe | steps | held-out acc | train acc | seconds |\n|---|---|---|---|---|")
  for name, rows in results.items():
    r = rows[-1]
    print(f"| {name} | {r['step']} | {r['held_out']:.1%} | {r['train']:.1%} | {r['seconds']:.0f} |")
  return results


if __name__ == "__main__":
  main()
