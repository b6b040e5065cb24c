"""Files of the demo world: a clip's ground-truth record (world/clips.jsonl) and back, the CSV /
JSON / JSONL writers of the public layouts, and the SentencePiece model trained on the world's text.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pathlib
from typing import Any, Mapping, Sequence

from data.demo_world.language import canonical_caption
from data.demo_world.vocabulary import FPS, MID_FRAME, NUM_FRAMES, Actor, Clip, Event

# ----------------------------------------------------------------------------------------------
# Ground truth.


def _event_record(e: Event) -> dict[str, Any]:
  rec: dict[str, Any] = {"t0": e.f0 / FPS, "t1": e.f1 / FPS, "actor": e.actor, "kind": e.kind}
  if e.kind in ("move", "stop", "bounce"):
    rec["direction"] = e.direction
  if e.kind == "bounce":
    rec["wall"] = e.wall
    rec["t_contact"] = e.fc / FPS
  if e.kind == "change_colour":
    rec["from"], rec["to"] = e.src, e.dst
  if e.kind == "stop":
    rec["cause"] = "hit"
    rec["target"] = e.target
    rec["t_contact"] = e.f1 / FPS
  return rec


def clip_record(clip: Clip) -> dict[str, Any]:
  """The world/clips.jsonl line of a clip (ground truth, not for model use)."""
  return {
      "clip_id": clip.clip_id, "dataset": clip.dataset, "subset": clip.subset,
      "split": clip.split, "file": clip.file,
      "actors": [{"idx": i, "shape": a.shape, "colour": a.colour, "size": a.size,
                  "visible_at_start": a.visible} for i, a in enumerate(clip.actors)],
      "events": [_event_record(e) for e in clip.events],
      "pair_id": clip.pair_id, "caption_canonical": canonical_caption(clip),
      "num_frames": NUM_FRAMES, "fps": FPS, "middle_frame": MID_FRAME, **clip.extra}


def read_records(world_dir: str | os.PathLike) -> list[dict[str, Any]]:
  """Every clip's ground-truth record (world/clips.jsonl under a generated world), in file order."""
  path = pathlib.Path(world_dir) / "world" / "clips.jsonl"
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def clip_from_record(record: Mapping[str, Any]) -> Clip:
  """A clip's script back from its world/clips.jsonl line, so tools can write more of its texts
  (paraphrases, spoken captions) after the world was generated. No tracks (pixels) and no move
  amounts: texts do not use them."""
  actors = [Actor(a["shape"], a["colour"], a["size"], bool(a["visible_at_start"]))
            for a in record["actors"]]
  events = [Event(kind=e["kind"], actor=int(e["actor"]), f0=round(e["t0"] * FPS),
                  f1=round(e["t1"] * FPS), direction=e.get("direction"), wall=e.get("wall"),
                  fc=round(e["t_contact"] * FPS) if e["kind"] == "bounce" else None,
                  src=e.get("from"), dst=e.get("to"), target=e.get("target"))
            for e in record["events"]]
  return Clip(actors, events, tracks=(), pair_id=record.get("pair_id"),
              clip_id=record["clip_id"], dataset=record["dataset"],
              subset=record.get("subset", ""), split=record.get("split", ""),
              file=record.get("file", ""))


# ----------------------------------------------------------------------------------------------
# Writers of the real formats.


def write_csv(path: pathlib.Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def write_json(path: pathlib.Path, obj: Any, indent: int | None = None) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=indent)
    f.write("\n")


def write_jsonl(path: pathlib.Path, objs: Sequence[Any]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for o in objs:
      f.write(json.dumps(o) + "\n")


def train_spm(lines: Sequence[str], model_prefix: pathlib.Path, vocab_size: int = 1000) -> int:
  """Trains the demo SentencePiece model (unigram, case-folded, pad/eos/bos/unk = 0/1/2/3).

  vocab_size is an upper bound (hard_vocab_limit=False): the world's text supports fewer pieces.
  Returns the size of the trained vocabulary.
  """
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  model_prefix.parent.mkdir(parents=True, exist_ok=True)
  lines = [" ".join(line.split()) for line in lines if line.strip()]
  # Each distinct word on its own line keeps whole-word pieces; the character line keeps any
  # lower-case word, digit and common punctuation representable (no <unk> outside the world).
  words = sorted({w for line in lines for w in line.lower().split()})
  chars = " ".join("abcdefghijklmnopqrstuvwxyz0123456789.,:;?!'\"-()/")
  sentences = lines + words * 5 + [chars]
  spm.set_random_generator_seed(0)  # The trainer's default seed comes from the clock.
  model = io.BytesIO()  # Not model_prefix: the proto would record the output path.
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_writer=model,
      model_type="unigram", vocab_size=vocab_size, hard_vocab_limit=False,
      normalization_rule_name="nmt_nfkc_cf", character_coverage=1.0,
      pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="</s>",
      bos_piece="<s>", unk_piece="<unk>", user_defined_symbols=["\n"], num_threads=1,
      minloglevel=2)
  model_prefix.with_suffix(".model").write_bytes(model.getvalue())
  sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
  with open(model_prefix.with_suffix(".vocab"), "w", encoding="utf-8") as f:
    for i in range(sp.get_piece_size()):  # spm_train's .vocab layout: piece TAB score.
      f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")
  return int(sp.get_piece_size())
