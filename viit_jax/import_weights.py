"""Import public big_vision weights (PaliGemma, SigLIP `.npz`) into an orbax checkpoint.

  python -m viit_jax.import_weights --src=pt_224.npz --kind=paligemma --variant=paligemma-3b-224 \
      --workdir=runs/pg224 [--res=448] [--frames=4]

Reads the `.npz` (`allow_pickle=False`; a leading `params/` is dropped; bf16 stored as 2-byte void is
viewed as bfloat16), converts per-layer blocks (`encoderblock_{i}`, `layers_{i}`) to our scanned
layout (or scanned to per-layer, whichever the model uses), bilinearly resizes the image position
embedding to the model's resolution, and checks every name and shape against the model's parameter
tree (from `jax.eval_shape`, nothing allocated): an error lists what is missing, extra and mis-shaped.

Kinds:
  paligemma  -> a VLM variant (`img/...`, `llm/...`), names as in the file.
  siglip     -> a dual-encoder variant (`img/`, `txt/`, `t`, `b`), or a bare ViT / ViT-st tower
                variant (the file's `img/` tower; the text tower, `t` and `b` are left unused).
                A ViT-st target (temporal=True) gets its new `temporal_pos_embedding` PE_t randomly
                initialised (`vit_to_vit_st`); everything else comes from the image ViT.

Output (the layout `viit_jax.checkpoints` restores with `init_from=<workdir>`): `<workdir>/checkpoints/`
is an orbax CheckpointManager directory with step 0 holding items
  state: StandardSave of {"step": int32 0, "params": tree (float32)}
  meta:  JsonSave of {"kind": "import", "source", "variant", "import_kind", "overrides"}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any, Union

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp
import scipy.ndimage
from flax import traverse_util

from viit_jax import checkpoints
from viit_jax import paths
from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import variants
from viit_jax.models import vit as vit_lib
from viit_jax.models import vlm as vlm_lib

# A parameter during conversion: a host array, or only its shape (for shape-level planning).
Leaf = Union[np.ndarray, jax.ShapeDtypeStruct]
KINDS = ("paligemma", "siglip")

_PER_LAYER = re.compile(r"^(.*?)(encoderblock|layers)_(\d+)/(.*)$")
_SCANNED = re.compile(r"^(.*?)(encoderblock|layers)/(.*)$")


class ImportMismatchError(ValueError):
  """The source's names or shapes do not match the model's parameter tree."""


def _flatten(tree: Any) -> dict[str, Any]:
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}


def _unflatten(flat: Mapping[str, Any]) -> Any:
  return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def _is_shape(x: Leaf) -> bool:
  return isinstance(x, jax.ShapeDtypeStruct)


def _stack(leaves: list[Leaf]) -> Leaf:
  if _is_shape(leaves[0]):
    return jax.ShapeDtypeStruct((len(leaves), *leaves[0].shape), leaves[0].dtype)
  return np.stack([np.asarray(x) for x in leaves])


def _unstack(x: Leaf) -> list[Leaf]:
  if _is_shape(x):
    return [jax.ShapeDtypeStruct(x.shape[1:], x.dtype)] * x.shape[0]
  return list(np.asarray(x))


def resize_posemb(posemb: Leaf, num_tokens: int) -> Leaf:
  """Bilinear resize of a square grid position embedding [1, N, D] -> [1, num_tokens, D].

  Same as big_vision's `resample_posemb` (scipy.ndimage.zoom, order 1).
  """
  old = posemb.shape[1]
  gs_old, gs_new = math.isqrt(old), math.isqrt(num_tokens)
  if gs_old ** 2 != old or gs_new ** 2 != num_tokens:
    raise ImportMismatchError(f"cannot resize a non-square position embedding {posemb.shape} "
                              f"to {num_tokens} tokens")
  if _is_shape(posemb):
    return jax.ShapeDtypeStruct((1, num_tokens, posemb.shape[2]), posemb.dtype)
  grid = np.asarray(posemb, np.float32).reshape(gs_old, gs_old, -1)
  zoom = (gs_new / gs_old, gs_new / gs_old, 1)
  return scipy.ndimage.zoom(grid, zoom, order=1).reshape(1, num_tokens, -1)


def convert_layers(src: Mapping[str, Leaf], target_names: set[str]) -> dict[str, Leaf]:
  """Stacks per-layer blocks into scanned ones (or unstacks) to match the target's layout."""
  out: dict[str, Leaf] = {}
  groups: dict[str, dict[int, Leaf]] = {}
  for name, x in src.items():
    m = _PER_LAYER.match(name)
    if m and name not in target_names:
      prefix, base, idx, rest = m.groups()
      scanned = f"{prefix}{base}/{rest}"
      if scanned in target_names:
        groups.setdefault(scanned, {})[int(idx)] = x
        continue
    m = _SCANNED.match(name)
    if m and name not in target_names:
      prefix, base, rest = m.groups()
      if f"{prefix}{base}_0/{rest}" in target_names:
        for i, layer in enumerate(_unstack(x)):
          out[f"{prefix}{base}_{i}/{rest}"] = layer
        continue
    out[name] = x
  for scanned, layers in groups.items():
    if sorted(layers) != list(range(len(layers))):
      raise ImportMismatchError(f"{scanned}: per-layer blocks {sorted(layers)} are not 0..n-1")
    out[scanned] = _stack([layers[i] for i in range(len(layers))])
  return out


def check_names(converted: Mapping[str, Leaf], target: Mapping[str, jax.ShapeDtypeStruct],
                source: str) -> None:
  """Raises ImportMismatchError listing every missing, extra and mis-shaped parameter."""
  missing = sorted(set(target) - set(converted))
  extra = sorted(set(converted) - set(target))
  bad = sorted(f"{k}: source {tuple(converted[k].shape)} vs model {tuple(target[k].shape)}"
               for k in set(target) & set(converted)
               if tuple(converted[k].shape) != tuple(target[k].shape))
  if missing or extra or bad:
    lines = [f"{source} does not match the model's parameters:"]
    for title, items in (("missing", missing), ("extra", extra), ("mis-shaped", bad)):
      if items:
        lines.append(f"  {len(items)} {title}:")
        lines.extend(f"    {x}" for x in items)
    raise ImportMismatchError("\n".join(lines))


def _image_tower(cfg: variants.ModelConfig) -> tuple[str, vit_lib.ViTConfig]:
  """(name prefix of the image tower in the model's tree, its config)."""
  if isinstance(cfg, (vlm_lib.VLMConfig, de_lib.DualEncoderConfig)):
    return "img/", cfg.img
  if isinstance(cfg, vit_lib.ViTConfig):
    return "", cfg
  raise ValueError(f"{type(cfg).__name__} has no image tower to import into")


def vit_to_vit_st(image_vit_params: Mapping[str, Any], num_frames: int,
                  rng: jax.Array) -> dict[str, Any]:
  """An image ViT's parameter tree -> a ViT-st tree: the same names plus a new
  `temporal_pos_embedding` [1, num_frames, D] ~ N(0, 1/D) (PE[t, n] = PE_t[t] + PE_s[n])."""
  params = dict(image_vit_params)
  if "temporal_pos_embedding" in params:
    raise ValueError("the parameters already have a temporal_pos_embedding")
  d = params["pos_embedding"].shape[-1]
  pe_t = jax.random.normal(rng, (1, num_frames, d), np.float32) * d ** -0.5
  params["temporal_pos_embedding"] = np.asarray(pe_t)
  return params


def convert(src: Mapping[str, Leaf], kind: str, cfg: variants.ModelConfig,
            rng: jax.Array | None = None, source: str = "source") -> tuple[dict[str, Leaf],
                                                                      list[str]]:
  """big_vision names -> our flat parameter dict for `cfg`, checked against its tree.

  Args:
    src: {name: array or ShapeDtypeStruct} with big_vision names (a `params/` prefix is dropped).
    kind: "paligemma" or "siglip".
    cfg: the model config to import into.
    rng: for parameters the source cannot have (ViT-st's PE_t); required only then.
    source: used in error messages.

  Returns:
    ({our name: float32 array (or ShapeDtypeStruct)}, [source names left unused]).
  """
  if kind not in KINDS:
    raise ValueError(f"unknown import kind {kind!r}; one of {KINDS}")
  if kind == "paligemma" and not isinstance(cfg, vlm_lib.VLMConfig):
    raise ValueError(f"kind=paligemma needs a VLM variant, got {type(cfg).__name__}")
  if kind == "siglip" and not isinstance(cfg, (de_lib.DualEncoderConfig, vit_lib.ViTConfig)):
    raise ValueError(f"kind=siglip needs a dual-encoder or ViT variant, got {type(cfg).__name__}")
  target = {k: v for k, v in _flatten(nn.unbox(variants.abstract_params(cfg))).items()}
  flat = {(k[len("params/"):] if k.startswith("params/") else k): v for k, v in src.items()}
  unused: list[str] = []
  img_prefix, img_cfg = _image_tower(cfg)
  if kind == "siglip" and isinstance(cfg, vit_lib.ViTConfig):  # a bare tower: take img/ only
    unused = sorted(k for k in flat if not k.startswith("img/"))
    flat = {k[len("img/"):]: v for k, v in flat.items() if k.startswith("img/")}
  flat = convert_layers(flat, set(target))
  posemb = f"{img_prefix}pos_embedding"
  if (posemb in flat and posemb in target and flat[posemb].shape != target[posemb].shape
      and flat[posemb].shape[-1] == target[posemb].shape[-1]):
    flat[posemb] = resize_posemb(flat[posemb], target[posemb].shape[1])
  pe_t = f"{img_prefix}temporal_pos_embedding"
  if img_cfg.temporal and pe_t not in flat and pe_t in target:
    if any(_is_shape(v) for v in flat.values()):
      flat[pe_t] = target[pe_t]
    else:
      if rng is None:
        raise ValueError("importing into ViT-st needs an rng for the new temporal_pos_embedding")
      if posemb not in flat:
        raise ImportMismatchError(f"{source} has no {posemb}")
      tower = vit_to_vit_st({"pos_embedding": flat[posemb]}, img_cfg.num_frames, rng)
      flat[pe_t] = tower["temporal_pos_embedding"]
  check_names(flat, target, source)
  out = {k: (v if _is_shape(v) else np.asarray(v).astype(np.float32)) for k, v in flat.items()}
  return out, unused


def import_params(src_path: str, kind: str, cfg: variants.ModelConfig,
                  rng: jax.Array | None = None) -> tuple[dict[str, Any], list[str]]:
  """Reads a big_vision .npz and returns (our nested float32 params, unused source names)."""
  flat, unused = convert(checkpoints.load_npz(src_path), kind, cfg, rng, source=src_path)
  return _unflatten(flat), unused


def write_checkpoint(workdir: str, params: Any, meta: Mapping[str, Any]) -> str:
  """Writes step 0 of `<workdir>/checkpoints` (refuses a workdir that already has checkpoints)."""
  directory = checkpoints.checkpoint_dir(workdir)
  handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=True),
                                  item_handlers=handlers)
  try:
    if manager.all_steps():
      raise FileExistsError(f"{directory} already holds checkpoints {manager.all_steps()}; "
                            "import into a fresh workdir")
    state = {"step": np.asarray(0, np.int32), "params": params}
    manager.save(0, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                            meta=ocp.args.JsonSave(dict(meta))))
    manager.wait_until_finished()
  finally:
    manager.close()
  return directory


def _overrides(cfg: variants.ModelConfig, res: int, frames: int) -> dict[str, int]:
  prefix = "" if isinstance(cfg, vit_lib.ViTConfig) else "img."
  out = {}
  if res:
    out[prefix + "image_size"] = res
  if frames:
    out[prefix + "num_frames"] = frames
  return out


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--src", required=True, help="big_vision .npz file")
  parser.add_argument("--kind", required=True, choices=KINDS)
  parser.add_argument("--variant", required=True, help="model variant (viit_jax.models.variants)")
  parser.add_argument("--workdir", required=True, help="output run directory")
  parser.add_argument("--res", type=int, default=0, help="image size (0 = the variant's)")
  parser.add_argument("--frames", type=int, default=0, help="frames (0 = the variant's)")
  parser.add_argument("--seed", type=int, default=0, help="rng seed for new parameters (PE_t)")
  args = parser.parse_args(argv)
  if not paths.path(args.src).is_file():
    parser.error(f"--src {args.src} is not a file")
  base = variants.get_config(args.variant)
  overrides = _overrides(base, args.res, args.frames)
  cfg = variants.get_config(args.variant, overrides)
  try:
    params, unused = import_params(args.src, args.kind, cfg, jax.random.PRNGKey(args.seed))
  except ImportMismatchError as e:
    sys.exit(f"error: {e}")
  meta = {"kind": "import", "source": paths.name(args.src), "variant": args.variant,
          "import_kind": args.kind, "overrides": overrides}
  directory = write_checkpoint(args.workdir, params, meta)
  n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
  print(json.dumps({"checkpoint": directory, "params": n, "unused_source": unused,
                    "config": dataclasses.asdict(cfg)}, indent=1, default=str))


if __name__ == "__main__":
  main()
