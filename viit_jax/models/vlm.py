"""The video-language model: frames -> ViT per frame -> concatenated visual tokens -> Gemma prefix-LM.

Parameter tree: `img/...` (vit.ViT with `head` projecting to the LM width, PaliGemma's layout) and
`llm/...` (gemma.Gemma). T=1 is PaliGemma's image model; T>1 concatenates the T x N tokens of the
frames in time order with no temporal embedding (the paper's video extension). An optional k x k
average pooling of each frame's token grid (`token_pool=k`) shortens long clips.

Batch contract (the data pipeline's):
  frames     uint8[B, T, H, W, 3]
  tokens     int32[B, L]   BOS + prefix + "\n" + suffix + EOS, padded with 0
  mask_ar    int32[B, L]   0 on the prefix (incl. BOS and "\n"), 1 on the suffix
  mask_loss  int32[B, L]   1 where the token is a training target (the suffix)
  mask_input int32[B, L]   1 on valid tokens
The LM sequence is [visual tokens | tokens]; visual tokens are prefix (mask_ar 0) and valid.

Decoding (see gemma.py for the cache layout):
  logits, cache = model.apply(v, frames, tokens, mask_ar, mask_input, max_decode_len,
                              method=VLM.prefill)            # logits f32[B, V] after the prompt
  logits, cache = model.apply(v, next_tokens, cache, method=VLM.extend)   # next_tokens int[B, 1]
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from viit_jax.models import gemma as gemma_lib
from viit_jax.models import layers
from viit_jax.models import vit as vit_lib

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class VLMConfig:
  """img.num_frames and llm.seq_len give the default input (FLOPs and example shapes)."""
  img: vit_lib.ViTConfig
  llm: gemma_lib.GemmaConfig
  token_pool: int = 1  # k x k average pooling of each frame's token grid; 1 = none

  def __post_init__(self):
    if self.img.head_features != self.llm.width:
      raise ValueError(f"img.head_features ({self.img.head_features}) must equal the LM width "
                       f"({self.llm.width})")
    if self.img.temporal or self.img.pool_type != "none":
      raise ValueError("the VLM's image encoder is per-frame (temporal=False) with pool_type none")
    if self.img.grid % self.token_pool:
      raise ValueError(f"token_pool {self.token_pool} does not divide the {self.img.grid}^2 grid")

  @property
  def tokens_per_frame(self) -> int:
    return (self.img.grid // self.token_pool) ** 2


class VLM(nn.Module):
  cfg: VLMConfig

  def setup(self):
    self.img = vit_lib.ViT(self.cfg.img)
    self.llm = gemma_lib.Gemma(self.cfg.llm)

  def encode_frames(self, frames: Array) -> Array:
    """frames [B, T, H, W, 3] -> per-frame visual tokens [B, T, N', D_llm] (after pooling)."""
    x = self.img(frames)  # [B, T, N, D_llm]
    k = self.cfg.token_pool
    if k > 1:
      b, t, n, d = x.shape
      g = self.cfg.img.grid
      x = x.reshape(b, t, g // k, k, g // k, k, d).mean(axis=(3, 5))
      x = x.reshape(b, t, (g // k) ** 2, d)
    return layers.constrain(x, ("batch", "frames", "length", "embed"))

  def embed_image(self, frames: Array) -> Array:
    """frames [B, T, H, W, 3] -> visual tokens [B, T * N', D_llm], frame-major."""
    x = self.encode_frames(frames)
    b, t, n, d = x.shape
    return layers.constrain(x.reshape(b, t * n, d), ("batch", "length", "embed"))

  def embed_prefix(self, frames: Array, tokens: Array, mask_ar: Array, mask_input: Array,
                   ) -> tuple[Array, Array, Array]:
    """-> (x [B, V + L, D], mask_ar int32[B, V + L], mask_input int32[B, V + L])."""
    img = self.embed_image(frames)
    txt = self.llm.embed(tokens)
    x = jnp.concatenate([img.astype(txt.dtype), txt], axis=1)
    b, v = img.shape[:2]
    mask_ar = jnp.concatenate([jnp.zeros((b, v), jnp.int32), mask_ar.astype(jnp.int32)], axis=1)
    mask_input = jnp.concatenate([jnp.ones((b, v), jnp.int32), mask_input.astype(jnp.int32)],
                                 axis=1)
    return x, mask_ar, mask_input

  def __call__(self, frames: Array, tokens: Array, mask_ar: Array, mask_input: Array) -> Array:
    """Teacher-forced logits f32[B, L, V] for the text positions (logits[:, i] predicts token i+1)."""
    x, ar, inp = self.embed_prefix(frames, tokens, mask_ar, mask_input)
    hidden, _ = self.llm.transform(x, gemma_lib.positions_from_mask(inp),
                                   gemma_lib.make_attn_mask(inp, ar))
    return self.llm.logits(hidden[:, -tokens.shape[1]:])

  def prefill(self, frames: Array, tokens: Array, mask_ar: Array, mask_input: Array,
              max_decode_len: int) -> tuple[Array, gemma_lib.Cache]:
    """Prompt (visual tokens + right-padded text prompt) -> (next-token logits f32[B, V], cache).

    The cache has V + L + max_decode_len slots.
    """
    x, ar, inp = self.embed_prefix(frames, tokens, mask_ar, mask_input)
    return self.llm.prefill(x, inp, ar, x.shape[1] + max_decode_len)

  def extend(self, tokens: Array, cache: gemma_lib.Cache) -> tuple[Array, gemma_lib.Cache]:
    """tokens int[B, 1] (the last sampled token) -> (next-token logits f32[B, V], cache)."""
    return self.llm.extend(self.llm.embed(tokens), cache)


def loss(logits: Array, tokens: Array, mask_loss: Array) -> tuple[Array, dict[str, Array]]:
  """Token NLL on the targets only.

  logits f32[B, L, V] (from VLM.__call__), tokens and mask_loss int[B, L]. Each example's loss is
  its mean NLL over its target tokens; the loss is the mean over examples (so equal-sized
  micro-batches average exactly). Also returns the summed NLL and the target-token count.
  """
  logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
  targets = tokens[:, 1:]
  weights = mask_loss[:, 1:].astype(jnp.float32)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * weights
  per_example = jnp.sum(nll, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
  return jnp.mean(per_example), {"nll_sum": jnp.sum(nll), "num_tokens": jnp.sum(weights)}


BATCH_KEYS = ("frames", "tokens", "mask_ar", "mask_loss", "mask_input")  # a training batch


def batch_spec(batch: int, num_frames: int, res: int, text_len: int
               ) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes of a training batch: frames uint8[B, T, R, R, 3]; tokens, mask_* int32[B, L]."""
  return {"frames": jax.ShapeDtypeStruct((batch, num_frames, res, res, 3), jnp.uint8),
          **{k: jax.ShapeDtypeStruct((batch, text_len), jnp.int32) for k in BATCH_KEYS[1:]}}


def batch_loss(params: Any, batch: Mapping[str, Array], rng: Array | None, *, model: VLM
               ) -> tuple[Array, Array, dict[str, Array]]:
  """The trainers' loss of a batch: (sum over examples of per-example mean target NLL, batch size
  B, metric sums).

  batch: frames uint8[B, T, H, W, 3]; tokens, mask_ar, mask_loss, mask_input int32[B, L].
  Summed per-example means divided by the summed B give the mean over examples, the same for one
  batch or its micro-batches (viit_jax.loop's accumulation contract).
  """
  del rng  # No dropout in these models.
  logits = model.apply({"params": params}, batch["frames"], batch["tokens"], batch["mask_ar"],
                       batch["mask_input"])
  mean, aux = loss(logits, batch["tokens"], batch["mask_loss"])
  b = batch["tokens"].shape[0]
  pred = jnp.argmax(logits[:, :-1], axis=-1)
  w = batch["mask_loss"][:, 1:].astype(jnp.float32)
  acc = jnp.sum((pred == batch["tokens"][:, 1:]) * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1)
  return mean * b, jnp.float32(b), {"token_accuracy": jnp.sum(acc),
                                    "target_tokens": aux["num_tokens"]}
