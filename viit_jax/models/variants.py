"""Every named model size, in one dict, plus shape-only helpers (parameter counts, FLOPs).

  python -m viit_jax.models.variants --list        # name, family, params, default input, GFLOPs

`get_config(name, overrides)` returns a frozen config; overrides use dotted field paths, e.g.
`{"llm.vocab_size": 1000, "img.num_frames": 8, "img.remat_policy": "full"}`; an unknown path is an
error naming it. `make_model(cfg)` builds the Flax module; `dummy_inputs(cfg, batch)` gives zero
inputs of the default shapes as keyword arguments of the module's `__call__`.

Default inputs: ViT / ViT-st `img.num_frames` frames at `image_size`; Gemma `seq_len` tokens; VLM
`img.num_frames` frames and `llm.seq_len` text tokens; text tower `seq_len` tokens.
FLOPs are analytic forward FLOPs per example (2 per multiply-add: every matmul and both attention
einsums; element-wise work is ignored). XLA's cost analysis does not multiply a scanned body by its
trip count, so it is only used to cross-check unscanned models in tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from viit_jax.models import dual_encoder as de_lib
from viit_jax.models import gemma as gemma_lib
from viit_jax.models import text as text_lib
from viit_jax.models import vit as vit_lib
from viit_jax.models import vlm as vlm_lib

ModelConfig = Union[vit_lib.ViTConfig, gemma_lib.GemmaConfig, text_lib.TextConfig,
                    vlm_lib.VLMConfig, de_lib.DualEncoderConfig]

# width, depth, mlp_dim, num_heads, patch_size (docs/checkpoints.md).
_VIT_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "B/16": (768, 12, 3072, 12, 16),
    "L/14": (1024, 24, 4096, 16, 14),
    "L/16": (1024, 24, 4096, 16, 16),
    "So400m/14": (1152, 27, 4304, 16, 14),
}


def _vit(size: str, **kw: Any) -> vit_lib.ViTConfig:
  width, depth, mlp_dim, num_heads, patch_size = _VIT_SIZES[size]
  return vit_lib.ViTConfig(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                           patch_size=patch_size, **kw)


def _siglip_text(size: str, seq_len: int, vocab_size: int = 32_000) -> text_lib.TextConfig:
  width, depth, mlp_dim, num_heads, _ = _VIT_SIZES[size]
  return text_lib.TextConfig(vocab_size=vocab_size, width=width, depth=depth, mlp_dim=mlp_dim,
                             num_heads=num_heads, seq_len=seq_len, head_features=width)


_PALIGEMMA_VOCAB = 257_152  # 256000 + 1024 <loc> + 128 <seg>


def _gemma_2b(vocab_size: int, seq_len: int = 512) -> gemma_lib.GemmaConfig:
  return gemma_lib.GemmaConfig(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1,
                               head_dim=256, vocab_size=vocab_size, seq_len=seq_len)


def _gemma2(width: int, depth: int, mlp_dim: int, num_heads: int, num_kv_heads: int,
            vocab_size: int, seq_len: int = 512) -> gemma_lib.GemmaConfig:
  return gemma_lib.GemmaConfig(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                               num_kv_heads=num_kv_heads, head_dim=256, vocab_size=vocab_size,
                               post_norms=True, attn_logits_softcap=50.0,
                               final_logits_softcap=30.0, sliding_window=4096, seq_len=seq_len)


def _paligemma(res: int, llm: gemma_lib.GemmaConfig) -> vlm_lib.VLMConfig:
  img = _vit("So400m/14", image_size=res, head_features=llm.width)
  return vlm_lib.VLMConfig(img=img, llm=dataclasses.replace(llm, seq_len=64))


_TEST_VIT = dict(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=8, image_size=16)
_DEMO_VIT = dict(width=64, depth=3, mlp_dim=256, num_heads=2, patch_size=8, image_size=32)

VARIANTS: dict[str, ModelConfig] = {
    # Tiny models for unit tests (compile in seconds).
    "test": vlm_lib.VLMConfig(
        img=vit_lib.ViTConfig(**_TEST_VIT, num_frames=2, head_features=32),
        llm=gemma_lib.GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1,
                                  head_dim=16, vocab_size=256, seq_len=16)),
    "test-de": de_lib.DualEncoderConfig(
        img=vit_lib.ViTConfig(**_TEST_VIT, num_frames=2, pool_type="map", head_features=32,
                              temporal=True),
        txt=text_lib.TextConfig(vocab_size=256, width=32, depth=2, mlp_dim=64, num_heads=2,
                                seq_len=8, head_features=32)),
    # The demo world (64x64 clips, 4 fps): 8 frames at 32 px, patch 8 (16 tokens per frame).
    "demo": vlm_lib.VLMConfig(
        img=vit_lib.ViTConfig(**_DEMO_VIT, num_frames=8, head_features=128),
        llm=gemma_lib.GemmaConfig(width=128, depth=2, mlp_dim=512, num_heads=4, num_kv_heads=1,
                                  head_dim=32, vocab_size=1000, seq_len=48)),
    "demo-de": de_lib.DualEncoderConfig(
        img=vit_lib.ViTConfig(**_DEMO_VIT, num_frames=4, pool_type="map", head_features=64,
                              temporal=True),
        txt=text_lib.TextConfig(vocab_size=1000, width=64, depth=3, mlp_dim=256, num_heads=2,
                                seq_len=32, head_features=64)),
    # ~25M LM parameters (width 512, 6 layers): the size where arithmetic rather than per-op
    # overhead should dominate a CPU step (benchmarks' `mid`); the demo's frames and resolution.
    "mid": vlm_lib.VLMConfig(
        img=vit_lib.ViTConfig(width=256, depth=4, mlp_dim=1024, num_heads=4, patch_size=8,
                              image_size=32, num_frames=8, head_features=512),
        llm=gemma_lib.GemmaConfig(width=512, depth=6, mlp_dim=2048, num_heads=8, num_kv_heads=1,
                                  head_dim=64, vocab_size=4096, seq_len=48)),
    "mid-de": de_lib.DualEncoderConfig(
        img=vit_lib.ViTConfig(width=256, depth=6, mlp_dim=1024, num_heads=4, patch_size=8,
                              image_size=32, num_frames=4, pool_type="map", head_features=512,
                              temporal=True),
        txt=text_lib.TextConfig(vocab_size=4096, width=512, depth=6, mlp_dim=2048, num_heads=8,
                                seq_len=32, head_features=512)),
    # Public SigLIP (two-tower, image side pooled by MAP, no image head) and bare ViT trunks.
    "siglip-b16": de_lib.DualEncoderConfig(img=_vit("B/16", pool_type="map"),
                                           txt=_siglip_text("B/16", seq_len=64)),
    "siglip-so400m14": de_lib.DualEncoderConfig(img=_vit("So400m/14", pool_type="map"),
                                                txt=_siglip_text("So400m/14", seq_len=16)),
    "vit-b16": _vit("B/16"),
    "vit-so400m14": _vit("So400m/14"),
    # Gemma decoders (Gemma tokenizer vocabulary).
    "gemma-2b": _gemma_2b(256_000),
    "gemma2-2b": _gemma2(2304, 26, 9216, 8, 4, 256_000),
    # PaliGemma (1: SigLIP So400m/14 + Gemma-2B; 2: + Gemma 2).
    "paligemma-3b-224": _paligemma(224, _gemma_2b(_PALIGEMMA_VOCAB)),
    "paligemma-3b-448": _paligemma(448, _gemma_2b(_PALIGEMMA_VOCAB)),
    "paligemma-3b-896": _paligemma(896, _gemma_2b(_PALIGEMMA_VOCAB)),
    "paligemma2-3b-224": _paligemma(224, _gemma2(2304, 26, 9216, 8, 4, _PALIGEMMA_VOCAB)),
    "paligemma2-10b-224": _paligemma(224, _gemma2(3584, 42, 14336, 16, 8, _PALIGEMMA_VOCAB)),
    # ViT-st video towers (joint space-time attention, 4 frames as in the paper) and dual encoder.
    "vit-st-b16": _vit("B/16", num_frames=4, pool_type="map", temporal=True),
    "vit-st-l14": _vit("L/14", num_frames=4, pool_type="map", temporal=True),
    "siglip-b16-video": de_lib.DualEncoderConfig(
        img=_vit("B/16", num_frames=4, pool_type="map", temporal=True),
        txt=_siglip_text("B/16", seq_len=64)),
    # The paper's size: ViT-st-L (L/16, SigLIP L/16's trunk) and SigLIP L/16's text tower.
    "siglip-l16-video": de_lib.DualEncoderConfig(
        img=_vit("L/16", num_frames=4, pool_type="map", temporal=True),
        txt=_siglip_text("L/16", seq_len=64)),
}


def _replace(cfg: Any, overrides: Mapping[str, Any], prefix: str = "") -> Any:
  """Applies dotted-path overrides, building each (sub-)config once so checks see the final values."""
  fields = {f.name for f in dataclasses.fields(cfg)}
  direct: dict[str, Any] = {}
  nested: dict[str, dict[str, Any]] = {}
  for key, value in overrides.items():
    head, _, rest = key.partition(".")
    if head not in fields:
      raise KeyError(f"unknown model config field {prefix + key!r} ({type(cfg).__name__} has "
                     f"{sorted(fields)})")
    if rest:
      if not dataclasses.is_dataclass(getattr(cfg, head)):
        raise KeyError(f"{prefix + key!r}: {head} is not a sub-config")
      nested.setdefault(head, {})[rest] = value
    else:
      direct[head] = value
  for head, sub in nested.items():
    if head in direct:
      raise KeyError(f"{prefix + head!r} is overridden both whole and by field")
    direct[head] = _replace(getattr(cfg, head), sub, f"{prefix}{head}.")
  return dataclasses.replace(cfg, **direct) if direct else cfg


def get_config(name: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
  """The named config with dotted-path overrides applied (e.g. {"llm.vocab_size": 1000})."""
  if name not in VARIANTS:
    raise KeyError(f"unknown model variant {name!r}; known: {sorted(VARIANTS)}")
  return _replace(VARIANTS[name], overrides or {})


def make_model(cfg: ModelConfig) -> nn.Module:
  if isinstance(cfg, vlm_lib.VLMConfig):
    return vlm_lib.VLM(cfg)
  if isinstance(cfg, de_lib.DualEncoderConfig):
    return de_lib.DualEncoder(cfg)
  if isinstance(cfg, vit_lib.ViTConfig):
    return vit_lib.ViT(cfg)
  if isinstance(cfg, gemma_lib.GemmaConfig):
    return gemma_lib.Gemma(cfg)
  if isinstance(cfg, text_lib.TextConfig):
    return text_lib.TextTransformer(cfg)
  raise TypeError(f"not a model config: {type(cfg).__name__}")


def _frames(vcfg: vit_lib.ViTConfig, batch: int) -> jax.Array:
  return jnp.zeros((batch, vcfg.num_frames, vcfg.image_size, vcfg.image_size, 3), jnp.uint8)


def dummy_inputs(cfg: ModelConfig, batch: int = 1) -> dict[str, jax.Array]:
  """Zero inputs of the default shapes, keyed by the module's `__call__` argument names."""
  if isinstance(cfg, vlm_lib.VLMConfig):
    tok = jnp.zeros((batch, cfg.llm.seq_len), jnp.int32)
    return {"frames": _frames(cfg.img, batch), "tokens": tok, "mask_ar": tok,
            "mask_input": jnp.ones_like(tok)}
  if isinstance(cfg, de_lib.DualEncoderConfig):
    return {"frames": _frames(cfg.img, batch),
            "tokens": jnp.zeros((batch, cfg.txt.seq_len), jnp.int32)}
  if isinstance(cfg, vit_lib.ViTConfig):
    return {"frames": _frames(cfg, batch)}
  if isinstance(cfg, gemma_lib.GemmaConfig):
    tok = jnp.zeros((batch, cfg.seq_len), jnp.int32)
    return {"tokens": tok, "mask_input": jnp.ones_like(tok), "mask_ar": tok}
  if isinstance(cfg, text_lib.TextConfig):
    return {"tokens": jnp.zeros((batch, cfg.seq_len), jnp.int32)}
  raise TypeError(f"not a model config: {type(cfg).__name__}")


def init_fn(cfg: ModelConfig):
  """rng -> {"params": boxed params} for the default input (use under eval_shape / jit)."""
  model = make_model(cfg)

  def init(rng: jax.Array) -> dict[str, Any]:
    return {"params": model.init(rng, **dummy_inputs(cfg, 1))["params"]}

  return init


def abstract_params(cfg: ModelConfig) -> Any:
  """ShapeDtypeStruct tree of the parameters (logical-axis boxes kept); allocates nothing."""
  return jax.eval_shape(init_fn(cfg), jax.random.PRNGKey(0))["params"]


def count_params(cfg: ModelConfig) -> int:
  leaves = jax.tree_util.tree_leaves(nn.unbox(abstract_params(cfg)))
  return int(sum(math.prod(x.shape) for x in leaves))


# ----------------------------------------------------------------------------- analytic FLOPs
def _encoder_flops(seq: int, width: int, depth: int, mlp_dim: int) -> int:
  per_layer = 2 * seq * width * width * 4 + 2 * 2 * seq * seq * width + 2 * 2 * seq * width * mlp_dim
  return depth * per_layer


def _vit_flops(cfg: vit_lib.ViTConfig, frames: int) -> int:
  n, d, p = cfg.num_patches, cfg.width, cfg.patch_size
  seq, num_seqs = (frames * n, 1) if cfg.temporal else (n, frames)
  flops = 2 * frames * n * p * p * 3 * d
  per_seq = _encoder_flops(seq, d, cfg.depth, cfg.mlp_dim)
  out_tokens = seq
  if cfg.pool_type == "map":
    per_seq += 2 * d * d * 2 + 2 * 2 * seq * d * d + 2 * 2 * seq * d + 2 * 2 * d * cfg.mlp_dim
    out_tokens = 1
  elif cfg.pool_type == "gap":
    out_tokens = 1
  if cfg.head_features is not None:
    per_seq += 2 * out_tokens * d * cfg.head_features
  return flops + num_seqs * per_seq


def _gemma_flops(cfg: gemma_lib.GemmaConfig, seq: int, logit_positions: int) -> int:
  d, h = cfg.width, cfg.head_dim
  per_layer = (2 * seq * d * cfg.num_heads * h + 2 * seq * d * 2 * cfg.num_kv_heads * h
               + 2 * 2 * seq * seq * cfg.num_heads * h + 2 * seq * cfg.num_heads * h * d
               + 2 * seq * d * cfg.mlp_dim * 3)
  return cfg.depth * per_layer + 2 * logit_positions * d * cfg.vocab_size


def _text_flops(cfg: text_lib.TextConfig) -> int:
  flops = _encoder_flops(cfg.seq_len, cfg.width, cfg.depth, cfg.mlp_dim)
  if cfg.head_features is not None:
    flops += 2 * cfg.width * cfg.head_features
  return flops


def flops_per_example(cfg: ModelConfig) -> int:
  """Analytic forward FLOPs for one example of the default input."""
  if isinstance(cfg, vlm_lib.VLMConfig):
    t, text = cfg.img.num_frames, cfg.llm.seq_len
    return (_vit_flops(cfg.img, t)
            + _gemma_flops(cfg.llm, t * cfg.tokens_per_frame + text, text))
  if isinstance(cfg, de_lib.DualEncoderConfig):
    return _vit_flops(cfg.img, cfg.img.num_frames) + _text_flops(cfg.txt)
  if isinstance(cfg, vit_lib.ViTConfig):
    return _vit_flops(cfg, cfg.num_frames)
  if isinstance(cfg, gemma_lib.GemmaConfig):
    return _gemma_flops(cfg, cfg.seq_len, cfg.seq_len)
  if isinstance(cfg, text_lib.TextConfig):
    return _text_flops(cfg)
  raise TypeError(f"not a model config: {type(cfg).__name__}")


def describe_input(cfg: ModelConfig) -> str:
  if isinstance(cfg, vlm_lib.VLMConfig):
    return (f"{cfg.img.num_frames}x{cfg.img.image_size}px, "
            f"{cfg.img.num_frames * cfg.tokens_per_frame} visual + {cfg.llm.seq_len} text tokens")
  if isinstance(cfg, de_lib.DualEncoderConfig):
    return f"{cfg.img.num_frames}x{cfg.img.image_size}px + {cfg.txt.seq_len} text tokens"
  if isinstance(cfg, vit_lib.ViTConfig):
    return f"{cfg.num_frames}x{cfg.image_size}px"
  if isinstance(cfg, (gemma_lib.GemmaConfig, text_lib.TextConfig)):
    return f"{cfg.seq_len} tokens"
  raise TypeError(f"not a model config: {type(cfg).__name__}")


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--list", action="store_true", help="print every variant")
  parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
  args = parser.parse_args(argv)
  if not args.list:
    parser.error("nothing to do: pass --list")
  names = [n for n in args.only.split(",") if n] or list(VARIANTS)
  print(f"{'variant':<20} {'family':<18} {'params':>15}  {'GFLOPs/ex':>10}  default input")
  for name in names:
    cfg = get_config(name)
    print(f"{name:<20} {type(cfg).__name__:<18} {count_params(cfg):>15,}  "
          f"{flops_per_example(cfg) / 1e9:>10.3f}  {describe_input(cfg)}", flush=True)


if __name__ == "__main__":
  main()
