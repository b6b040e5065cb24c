"""SigLIP-style ViT over frames, and its joint space-time variant ViT-st.

Parameter tree (big_vision names, docs/checkpoints.md):
  embedding/{kernel [P, P, 3, D], bias [D]}        patch conv (VALID, stride P)
  pos_embedding [1, N, D]                          learned, N = (image_size // P)^2, no class token
  temporal_pos_embedding [1, T, D]                 ViT-st only: PE[t, n] = PE_t[t] + PE_s[n]
  Transformer/encoderblock/...                     scanned blocks, leading [depth] axis
     (or Transformer/encoderblock_{i}/... with scan=False)
  Transformer/encoder_norm/{scale, bias}
  MAPHead_0/...                                    pool_type == "map"
  head/{kernel [D, F], bias [F]}                   head_features is not None

Input frames are `uint8[B, T, H, W, 3]` (normalised on device to [-1, 1]) or float in [-1, 1].
The image ViT encodes each frame on its own (frames folded into the batch); ViT-st (`temporal=True`)
attends jointly over all T * N tokens of a clip.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from viit_jax.models import layers

Array = jax.Array

POOL_TYPES = ("none", "map", "gap")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """A ViT tower. `image_size` and `num_frames` fix the default input (and ViT-st's PE_t length)."""
  width: int
  depth: int
  mlp_dim: int
  num_heads: int
  patch_size: int
  image_size: int = 224
  num_frames: int = 1
  pool_type: str = "none"  # none | map | gap
  head_features: int | None = None  # a final `head` Dense to this width, or no head
  head_zeroinit: bool = False
  temporal: bool = False  # ViT-st: joint space-time attention + temporal position embedding
  scan: bool = True
  remat_policy: str = "none"  # none | full | dots | dots_no_batch | nothing_saveable
  dtype: str = "float32"  # compute dtype; parameters are always float32

  def __post_init__(self):
    if self.pool_type not in POOL_TYPES:
      raise ValueError(f"pool_type {self.pool_type!r} not in {POOL_TYPES}")
    if self.image_size % self.patch_size:
      raise ValueError(f"image_size {self.image_size} not divisible by patch {self.patch_size}")
    if self.width % self.num_heads:
      raise ValueError(f"width {self.width} not divisible by num_heads {self.num_heads}")

  @property
  def grid(self) -> int:
    return self.image_size // self.patch_size

  @property
  def num_patches(self) -> int:
    return self.grid * self.grid

  @property
  def out_features(self) -> int:
    return self.head_features if self.head_features is not None else self.width


def normalize_frames(frames: Array, dtype: jnp.dtype) -> Array:
  """uint8 pixels -> [-1, 1]; float input is assumed to be in [-1, 1] already."""
  if frames.dtype == jnp.uint8:
    return (frames.astype(jnp.float32) * (2.0 / 255.0) - 1.0).astype(dtype)
  return frames.astype(dtype)


class PatchEmbed(nn.Module):
  """`kernel` [P, P, 3, D], `bias` [D]: non-overlapping P x P patches -> [B, (H/P)(W/P), D]."""
  patch_size: int
  width: int
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x: Array) -> Array:
    p = self.patch_size
    kernel = layers.logical_param(self, "kernel", nn.initializers.lecun_normal(in_axis=(0, 1, 2),
                                                                                out_axis=3),
                                  (p, p, 3, self.width), (None, None, None, "embed"))
    bias = layers.logical_param(self, "bias", nn.initializers.zeros, (self.width,), ("embed",))
    n, h, w, c = x.shape
    x = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(n, (h // p) * (w // p), p * p * c)
    y = jnp.dot(x, kernel.reshape(p * p * c, self.width).astype(self.dtype))
    return y + bias.astype(self.dtype)


class ViT(nn.Module):
  """SigLIP ViT (per frame) or ViT-st (joint space-time).

  Returns, for frames [B, T, H, W, 3] and F = cfg.out_features:
    image ViT:  pool none -> [B, T, N, F];  pooled -> [B, T, F]
    ViT-st:     pool none -> [B, T * N, F]; pooled -> [B, F]
  """
  cfg: ViTConfig

  @nn.compact
  def __call__(self, frames: Array) -> Array:
    cfg = self.cfg
    dtype = jnp.dtype(cfg.dtype)
    if frames.ndim != 5 or frames.shape[-1] != 3:
      raise ValueError(f"frames must be [B, T, H, W, 3], got {frames.shape}")
    b, t, h, w, _ = frames.shape
    if (h, w) != (cfg.image_size, cfg.image_size):
      raise ValueError(f"frames are {h}x{w} but the model's image_size is {cfg.image_size} "
                       "(import with --res to resize the position embedding)")
    if cfg.temporal and t != cfg.num_frames:
      raise ValueError(f"ViT-st was built for {cfg.num_frames} frames, got {t}")
    frames = layers.constrain(frames, ("batch", "frames", None, None, None))
    x = normalize_frames(frames, dtype).reshape(b * t, h, w, 3)

    # Patch embedding == VALID conv with stride P, written as patchify + matmul.
    p, g, d = cfg.patch_size, cfg.grid, cfg.width
    x = PatchEmbed(p, d, dtype, name="embedding")(x)  # [B*T, N, D]
    pos = layers.logical_param(self, "pos_embedding", nn.initializers.normal(stddev=d ** -0.5),
                               (1, g * g, d), (None, None, "embed"))
    x = x + pos.astype(dtype)
    if cfg.temporal:
      pos_t = layers.logical_param(self, "temporal_pos_embedding",
                                   nn.initializers.normal(stddev=d ** -0.5), (1, t, d),
                                   (None, None, "embed"))
      x = x.reshape(b, t, g * g, d) + pos_t.astype(dtype)[:, :, None, :]
      x = x.reshape(b, t * g * g, d)
    x = layers.constrain(x, ("batch", "length", "embed"))
    x = layers.Encoder(cfg.depth, cfg.mlp_dim, cfg.num_heads, cfg.scan, cfg.remat_policy, dtype,
                       name="Transformer")(x)
    if cfg.pool_type == "map":
      x = layers.MAPHead(cfg.mlp_dim, cfg.num_heads, dtype, name="MAPHead_0")(x)
    elif cfg.pool_type == "gap":
      x = jnp.mean(x, axis=1)
    if cfg.head_features is not None:
      kinit = nn.initializers.zeros if cfg.head_zeroinit else nn.initializers.lecun_normal()
      x = layers.Dense(cfg.head_features, (None, "embed"), dtype, kernel_init=kinit,
                       bias_init=nn.initializers.zeros, name="head")(x)
    if cfg.temporal:
      return x
    return x.reshape(b, t, *x.shape[1:])
