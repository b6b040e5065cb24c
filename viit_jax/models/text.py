"""SigLIP-style text tower (big_vision `text_transformer`, docs/checkpoints.md).

Parameter tree:
  Embed_0/embedding [V, D]          no sqrt(D) scaling
  pos_embedding [1, S, D]           learned
  Encoder_0/encoderblock/...        scanned blocks (big_vision files: Encoder_0/encoderblock_{i}/...)
  Encoder_0/encoder_norm/{scale, bias}
  head/{kernel [D, F], bias [F]}    head_features is not None

The pooled output is the last token (texts are padded with EOS, id 1, so the last token is EOS).
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from viit_jax.models import layers

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class TextConfig:
  vocab_size: int
  width: int
  depth: int
  mlp_dim: int
  num_heads: int
  seq_len: int
  head_features: int | None = None
  scan: bool = True
  remat_policy: str = "none"
  dtype: str = "float32"

  @property
  def out_features(self) -> int:
    return self.head_features if self.head_features is not None else self.width


class TokenEmbed(nn.Module):
  """`embedding` [V, D]: int[B, S] -> [B, S, D]."""
  vocab_size: int
  width: int
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=0)
    table = layers.logical_param(self, "embedding", init, (self.vocab_size, self.width),
                                 ("vocab", "embed"))
    table = layers.constrain(table, ("vocab", None))  # FSDP all-gather of the embed axis
    return jnp.take(table, tokens, axis=0).astype(self.dtype)


class TextTransformer(nn.Module):
  """tokens int[B, S] (S == cfg.seq_len) -> pooled text features [B, cfg.out_features]."""
  cfg: TextConfig

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    cfg = self.cfg
    dtype = jnp.dtype(cfg.dtype)
    if tokens.ndim != 2 or tokens.shape[1] != cfg.seq_len:
      raise ValueError(f"text tokens must be [B, {cfg.seq_len}], got {tokens.shape}")
    x = TokenEmbed(cfg.vocab_size, cfg.width, dtype, name="Embed_0")(tokens)
    pos = layers.logical_param(self, "pos_embedding",
                               nn.initializers.normal(stddev=cfg.width ** -0.5),
                               (1, cfg.seq_len, cfg.width), (None, None, "embed"))
    x = layers.constrain(x + pos.astype(dtype), ("batch", "length", "embed"))
    x = layers.Encoder(cfg.depth, cfg.mlp_dim, cfg.num_heads, cfg.scan, cfg.remat_policy, dtype,
                       name="Encoder_0")(x)
    x = x[:, -1]
    if cfg.head_features is not None:
      x = layers.Dense(cfg.head_features, (None, "embed"), dtype,
                       kernel_init=nn.initializers.lecun_normal(),
                       bias_init=nn.initializers.zeros, name="head")(x)
    return x
