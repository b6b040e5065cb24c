"""Video-text dual encoder: ViT-st (or per-frame image ViT) video tower + SigLIP text tower.

Parameter tree: `img/...` (vit.ViT), `txt/...` (text.TextTransformer), `t` [1] (log temperature,
init log 10), `b` [1] (bias, init -10). With `img.temporal=True` the video tower is ViT-st (joint
space-time attention, PE[t, n] = PE_t[t] + PE_s[n]); otherwise each frame is embedded on its own and the
pooled frame features are averaged over time (T=1: the SigLIP image-text model).

Embeddings are L2-normalised (eps 1e-8). Losses: `sigmoid_loss` (SigLIP) and `softmax_loss`
(symmetric InfoNCE, the paper's), both on logits z_img . z_txt * exp(t) (+ b).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from viit_jax.models import layers
from viit_jax.models import text as text_lib
from viit_jax.models import vit as vit_lib

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DualEncoderConfig:
  img: vit_lib.ViTConfig
  txt: text_lib.TextConfig
  t_init: float = math.log(10.0)
  b_init: float = -10.0

  def __post_init__(self):
    if self.img.pool_type == "none":
      raise ValueError("the dual encoder's video tower needs a pool_type (map or gap)")
    if self.img.out_features != self.txt.out_features:
      raise ValueError(f"embedding widths differ: video {self.img.out_features}, "
                       f"text {self.txt.out_features}")


def l2_normalize(z: Array, eps: float = 1e-8) -> Array:
  z = z.astype(jnp.float32)
  return z / (jnp.linalg.norm(z, axis=-1, keepdims=True) + eps)


class DualEncoder(nn.Module):
  cfg: DualEncoderConfig

  def setup(self):
    self.img = vit_lib.ViT(self.cfg.img)
    self.txt = text_lib.TextTransformer(self.cfg.txt)
    self.t = layers.logical_param(self, "t", nn.initializers.constant(self.cfg.t_init), (1,),
                                  (None,))
    self.b = layers.logical_param(self, "b", nn.initializers.constant(self.cfg.b_init), (1,),
                                  (None,))

  def embed_video(self, frames: Array) -> Array:
    """frames uint8[B, T, H, W, 3] -> L2-normalised f32[B, E]."""
    z = self.img(frames)
    if not self.cfg.img.temporal:
      z = jnp.mean(z.astype(jnp.float32), axis=1)  # per-frame features [B, T, E] -> [B, E]
    return l2_normalize(z)

  def embed_text(self, tokens: Array) -> Array:
    """tokens int[B, S] -> L2-normalised f32[B, E]."""
    return l2_normalize(self.txt(tokens))

  def __call__(self, frames: Array, tokens: Array) -> tuple[Array, Array, dict[str, Array]]:
    """Returns (zimg [B, E], ztxt [B', E], {"t": log temperature [1], "b": bias [1]})."""
    return self.embed_video(frames), self.embed_text(tokens), {"t": self.t, "b": self.b}


def sigmoid_loss(zimg: Array, ztxt: Array, t: Array, b: Array) -> Array:
  """SigLIP loss: pairs on the diagonal are positives. zimg, ztxt [B, E] -> scalar."""
  logits = zimg @ ztxt.T * jnp.exp(t[0]) + b[0]
  labels = 2.0 * jnp.eye(zimg.shape[0]) - 1.0
  return -jnp.mean(jnp.sum(jax.nn.log_sigmoid(labels * logits), axis=-1))


def softmax_loss(zimg: Array, ztxt: Array, t: Array) -> Array:
  """Symmetric InfoNCE (video->text and text->video). zimg, ztxt [B, E] -> scalar."""
  logits = zimg @ ztxt.T * jnp.exp(t[0])
  idx = jnp.arange(zimg.shape[0])
  i2t = -jnp.mean(jax.nn.log_softmax(logits, axis=1)[idx, idx])
  t2i = -jnp.mean(jax.nn.log_softmax(logits, axis=0)[idx, idx])
  return 0.5 * (i2t + t2i)


LOSSES = ("softmax", "sigmoid")  # dual_encoder.loss


def batch_loss(params: Any, batch: Mapping[str, jax.Array], rng: jax.Array | None, *,
               model: DualEncoder, loss: str
               ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """(loss x B, B, metric sums) of a global batch {frames uint8[B,T,H,W,3], tokens int32[B,S]}.

  The loss is the mean over the batch (InfoNCE / SigLIP are not sums over independent examples);
  multiplying by B keeps the loop's sum / weight contract exact for micro_batches=1.
  """
  del rng  # No dropout.
  zimg, ztxt, extra = model.apply({"params": params}, batch["frames"], batch["tokens"])
  t, b = extra["t"], extra["b"]
  if loss == "softmax":
    value = softmax_loss(zimg, ztxt, t)
  elif loss == "sigmoid":
    value = sigmoid_loss(zimg, ztxt, t, b)
  else:
    raise ValueError(f"dual_encoder.loss must be one of {LOSSES}, got {loss!r}")
  n = zimg.shape[0]
  sim = zimg @ ztxt.T  # [B, B] cosine similarities of the global batch
  idx = jnp.arange(n)
  weight = jnp.float32(n)
  metrics = {
      "v2t_top1": jnp.sum(jnp.argmax(sim, axis=1) == idx).astype(jnp.float32),
      "t2v_top1": jnp.sum(jnp.argmax(sim, axis=0) == idx).astype(jnp.float32),
      "temperature": jnp.exp(t[0]) * weight,
      "pos_similarity": jnp.sum(jnp.diagonal(sim)),
  }
  return value * weight, weight, metrics
