"""seqio tasks of the synthesized video instruction data, and the phase-2 (VIIT) mixture.

`python -m viit_jax.synthesize` writes a dataset version (viit_jax/synthesis/dataset.py has the
layout). `register_viit_tasks` registers one task per kind over it:

  <prefix>temporal, <prefix>causal, <prefix>shortqa   (prefix "demo_viit_" for the demo world,
                                                      "viit_" for real data)
  split "train" (random temporal window, as the other training tasks); each example:
    "frames"  uint8[T, H, W, 3]   decoded from the clip with PyAV (data.video via data.tasks)
    "prefix"  int32[Lp]           the question prompt: the question for temporal/causal QA,
                                  "Answer in en: <question>" for short QA (the paper's prefix)
    "suffix"  int32[Ls]           the answer
    plus key (= prompt_id), clip_id, kind and the pretokenized texts.

and the mixture `<prefix>mix` (demo: `demo_viit_mix`) the paper trains phase 2 on: VidLN
reasoning QA + S-MiT captions + VidLN short QA, with the given rates (seqio mixing rates,
relative). The S-MiT caption task must be registered first (data.tasks.register_demo_tasks or
register_real_tasks).
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterator, Mapping

from data import preprocessors as pp
from data import tasks as tasks_lib
from viit_jax import paths

KINDS = ("temporal", "causal", "shortqa")
# How each kind's question becomes the prompt (prefix): reasoning questions as they are, short QA
# after "Answer in en:" as in the paper (and as NExT-QA OE is evaluated).
PROMPTS = {"temporal": "{question}", "causal": "{question}",
           "shortqa": pp.QA_PROMPT + " {question}"}
# Default mixing rates (the paper does not give its own): reasoning QA (the two reasoning kinds
# together), captions and short QA in equal parts.
DEFAULT_RATES = {"temporal": 0.5, "causal": 0.5, "captions": 1.0, "shortqa": 1.0}


def find_version(dataset_dir: paths.PathLike) -> paths.Path:
  """The finished dataset version in `dataset_dir` (local or gs://): the directory itself when it
  holds a manifest.json, else its only subdirectory that does (a synthesize --workdir with one
  version)."""
  root = paths.path(dataset_dir)
  if (root / "manifest.json").exists():
    return root
  versions = sorted(p.parent for p in root.glob("*/manifest.json"))
  if len(versions) == 1:
    return versions[0]
  if not versions:
    raise FileNotFoundError(
        f"{root} holds no finished instruction dataset (no manifest.json in it or in a version "
        "subdirectory); run python -m viit_jax.synthesize --workdir=... to completion first")
  raise ValueError(f"{root} holds several dataset versions {[v.name for v in versions]}; pass "
                   "the version directory itself")


def read_records(version_dir: paths.Path, kind: str) -> Iterator[dict[str, str]]:
  """The accepted pairs of one kind, in unit order (the JSONL twin of each unit's TFRecord)."""
  for path in sorted((version_dir / "units").glob("unit-*.jsonl")):
    if path.name.endswith(".rejects.jsonl"):
      continue
    for row in paths.read_jsonl(path):
      if row["kind"] == kind:
        yield row


def register_viit_tasks(dataset_dir: str | pathlib.Path, *, vocab_path: str | pathlib.Path,
                        num_frames: int, fps: float, res: int, world_dir: str | pathlib.Path = "",
                        video_root: str | pathlib.Path = "",
                        rates: Mapping[str, float] | None = None, name_prefix: str | None = None,
                        smit_task: str | None = None, decode_workers: int = 1,
                        shuffle_buffer_size: int = 64, cache_decoded: bool = False) -> list[str]:
  """Registers the three instruction tasks and the phase-2 mixture; returns their names.

  Args:
    dataset_dir: a synthesize workdir with one version, or a version directory (v1/).
    vocab_path: SentencePiece model.
    num_frames, fps, res: frame sampling (T frames at fps, res x res).
    world_dir: the demo world: videos under <world_dir>/vidln, demo task names.
    video_root: where the dataset's video paths are relative to; '' = <world_dir>/vidln for
      the demo, else the manifest's video_root (the narratives file's directory).
    rates: mixing rates with keys temporal, causal, captions, shortqa (DEFAULT_RATES if None).
    name_prefix: task name prefix ('' / None: "demo_viit_" with world_dir, else "viit_").
    smit_task: the caption task (None: "demo_smit_caption" with world_dir, else "smit_caption").
    decode_workers, shuffle_buffer_size, cache_decoded: as data.tasks.register_demo_tasks.
  """
  version = find_version(dataset_dir)
  manifest = paths.read_json(version / "manifest.json")
  demo = bool(str(world_dir))
  prefix = name_prefix or ("demo_viit_" if demo else "viit_")
  caption_task = smit_task or ("demo_smit_caption" if demo else "smit_caption")
  if video_root:
    root = pathlib.Path(video_root)
  elif demo:
    root = pathlib.Path(world_dir) / "vidln"
  else:
    root = pathlib.Path(manifest["video_root"])
  if not root.is_dir():
    raise FileNotFoundError(f"video root {root} of the instruction dataset does not exist")
  rates = dict(DEFAULT_RATES if rates is None else rates)
  if set(rates) != set(DEFAULT_RATES):
    raise ValueError(f"rates must have exactly the keys {sorted(DEFAULT_RATES)}, got "
                     f"{sorted(rates)}")

  names = []
  for kind in KINDS:
    if not manifest["counts_per_kind"].get(kind):
      raise ValueError(f"{version}: no accepted {kind} pairs (manifest counts "
                       f"{manifest['counts_per_kind']}); the mixture needs all three kinds")

    def items(kind: str = kind) -> Iterator[tasks_lib.VideoText]:
      for r in read_records(version, kind):
        yield tasks_lib.VideoText(
            key=r["prompt_id"], path=root / r["video_path"],
            prefix=PROMPTS[kind].format(question=r["question"]), suffix=r["answer"],
            meta={"clip_id": r["clip_id"], "kind": r["kind"]})

    names.append(tasks_lib.register_video_text_task(
        f"{prefix}{kind}", {"train": items}, vocab_path=vocab_path, num_frames=num_frames,
        fps=fps, res=res, train_splits=("train",), meta_keys=("clip_id", "kind"),
        decode_workers=decode_workers, shuffle_buffer_size=shuffle_buffer_size,
        cache_decoded=cache_decoded))
  by_role = dict(zip(KINDS, names))
  mixture = f"{prefix}mix"
  tasks_lib.register_viit_mixture(mixture, [
      (by_role["temporal"], rates["temporal"]), (by_role["causal"], rates["causal"]),
      (caption_task, rates["captions"]), (by_role["shortqa"], rates["shortqa"])])
  return [*names, mixture]
