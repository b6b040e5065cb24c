"""Gemma / Gemma 2 decoder LM with prefix-LM attention and a KV cache for decoding.

Parameter tree (big_vision names, docs/checkpoints.md), L layers scanned under `layers/`:
  embedder/input_embedding [V, D]                     tied with the output layer
  layers/pre_attention_norm/scale, layers/pre_ffw_norm/scale [L, D]
  layers/post_attention_norm/scale, layers/post_ffw_norm/scale [L, D]   (Gemma 2, `post_norms`)
  layers/attn/q_einsum/w [L, N, D, Hd]
  layers/attn/kv_einsum/w [L, 2, K, D, Hd]            (0 = k, 1 = v)
  layers/attn/attn_vec_einsum/w [L, N, Hd, D]
  layers/mlp/gating_einsum [L, 2, D, F]               (0 = gate through GELU, 1 = up)
  layers/mlp/linear [L, F, D]
  final_norm/scale [D]
With `scan=False` the blocks are `layers_{i}/...` without the leading axis.

Numerics: RMSNorm x * rsqrt(mean(x^2) + 1e-6) * (1 + scale); half-split RoPE (max wavelength 10000) on
q and k; q scaled by Hd^-0.5 after RoPE; GQA (query head n uses kv head n // (N / K)); attention logits
in float32, optionally soft-capped (Gemma 2: 50 tanh(l / 50)) before masking; text embeddings times
sqrt(D); tied output logits in float32, optionally soft-capped (30 tanh(x / 30)). Gemma 2's local
layers (even layer indices) attend within `sliding_window` positions.

Attention masks come from `make_attn_mask(mask_input, mask_ar)`: token i sees token j iff
cumsum(mask_ar)[j] <= cumsum(mask_ar)[i] and both are valid (prefix-LM: mask_ar 0 = bidirectional
prefix, 1 = causal suffix). Positions are cumsum(mask_input) - 1.

Decoding API (all shapes static, usable inside `lax.while_loop`):
  logits, cache = model.apply(v, x, mask_input, mask_ar, cache_size, method=Gemma.prefill)
  logits, cache = model.apply(v, x_next, cache, method=Gemma.extend)
where x are embedded inputs (`Gemma.embed` for tokens). The cache is a dict (see `init_cache`):
  k, v:  [L, B, S, K, Hd]  keys stored after RoPE (compute dtype)
  mask:  bool[B, S]        which cache slots hold valid tokens
  pos:   int32[B]          RoPE position of the next token
  index: int32[]           next slot to write (shared by the batch; padding leaves masked slots)
Prefill writes the P prompt tokens to slots [0, P); each extend writes one token to slot `index`.
S must be >= P + the number of extend calls.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from viit_jax.models import layers

Array = jax.Array
Cache = dict[str, Array]


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
  """A Gemma decoder. `seq_len` is only the default input length (FLOPs, shape checks)."""
  width: int
  depth: int
  mlp_dim: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  vocab_size: int
  post_norms: bool = False  # Gemma 2
  attn_logits_softcap: float | None = None  # Gemma 2: 50.0
  final_logits_softcap: float | None = None  # Gemma 2: 30.0 (PaliGemma 2 transfers turn it off)
  sliding_window: int | None = None  # Gemma 2: 4096 on even (local) layers
  rope_max_wavelength: float = 10_000.0
  seq_len: int = 128
  scan: bool = True
  remat_policy: str = "none"
  dtype: str = "float32"

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads {self.num_heads} not a multiple of num_kv_heads "
                       f"{self.num_kv_heads}")
    if self.head_dim % 2:
      raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")


def make_attn_mask(mask_input: Array, mask_ar: Array) -> Array:
  """Prefix-LM mask bool[B, L, L] from mask_input [B, L] (1 valid) and mask_ar [B, L]."""
  cumsum = jnp.cumsum(mask_ar, axis=1)
  attn = cumsum[:, None, :] <= cumsum[:, :, None]
  valid = jnp.logical_and(mask_input[:, None, :] != 0, mask_input[:, :, None] != 0)
  return jnp.logical_and(attn, valid)


def positions_from_mask(mask_input: Array) -> Array:
  """int32[B, L]: 0-based positions of the valid tokens (padding repeats the last position)."""
  return jnp.maximum(jnp.cumsum(mask_input.astype(jnp.int32), axis=1) - 1, 0)


def apply_rope(x: Array, positions: Array, max_wavelength: float) -> Array:
  """Half-split rotary embedding. x [B, T, N, H], positions [B, T] -> [B, T, N, H]."""
  h = x.shape[-1]
  freq_exponents = 2.0 * jnp.arange(h // 2, dtype=jnp.float32) / h
  timescale = max_wavelength ** freq_exponents
  radians = positions.astype(jnp.float32)[..., None] / timescale  # [B, T, H/2]
  sin, cos = jnp.sin(radians)[:, :, None, :], jnp.cos(radians)[:, :, None, :]
  xf = x.astype(jnp.float32)
  x1, x2 = jnp.split(xf, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


def init_cache(cfg: GemmaConfig, batch: int, size: int) -> Cache:
  """An empty KV cache with `size` slots (see the module docstring for the layout)."""
  shape = (cfg.depth, batch, size, cfg.num_kv_heads, cfg.head_dim)
  dtype = jnp.dtype(cfg.dtype)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype),
          "mask": jnp.zeros((batch, size), jnp.bool_), "pos": jnp.zeros((batch,), jnp.int32),
          "index": jnp.zeros((), jnp.int32)}


def reorder_cache(cache: Cache, indices: Array) -> Cache:
  """Gathers batch rows (e.g. surviving beams): indices int32[B'] -> cache with batch B'."""
  return {"k": cache["k"][:, indices], "v": cache["v"][:, indices],
          "mask": cache["mask"][indices], "pos": cache["pos"][indices], "index": cache["index"]}


class RMSNorm(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = layers.logical_param(self, "scale", nn.initializers.zeros, (x.shape[-1],), ("embed",))
    xf = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(xf), axis=-1, keepdims=True)
    return (xf * jax.lax.rsqrt(var + 1e-6) * (1.0 + scale)).astype(self.dtype)


class Einsum(nn.Module):
  """A single weight `w` of the given shape, applied with an einsum equation."""
  shape: tuple[int, ...]
  axes: tuple[str | None, ...]
  init: layers.Initializer

  @nn.compact
  def __call__(self, eqn: str, x: Array) -> Array:
    w = layers.logical_param(self, "w", self.init, self.shape, self.axes)
    return jnp.einsum(eqn, x, w.astype(x.dtype))


class Embedder(nn.Module):
  vocab_size: int
  width: int
  dtype: Any = jnp.float32

  def setup(self):
    init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=0)
    self.input_embedding = layers.logical_param(self, "input_embedding", init,
                                                (self.vocab_size, self.width), ("vocab", "embed"))

  def encode(self, tokens: Array) -> Array:
    """int[B, L] -> [B, L, D], scaled by sqrt(D)."""
    # FSDP: gather the table's embed axis first (a gather from an embed-sharded table into a
    # batch-sharded output makes XLA replicate the result).
    table = layers.constrain(self.input_embedding, ("vocab", None))
    x = jnp.take(table, tokens, axis=0).astype(self.dtype)
    return x * jnp.asarray(math.sqrt(self.width), self.dtype)

  def decode(self, x: Array) -> Array:
    """[B, L, D] -> float32 logits [B, L, V] (tied weights)."""
    return jnp.einsum("bld,vd->blv", x, self.input_embedding.astype(x.dtype),
                      preferred_element_type=jnp.float32)


class Attention(nn.Module):
  cfg: GemmaConfig

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Array,
               kv_cache: tuple[Array, Array] | None, kv_index: Array | None,
               ) -> tuple[Array, tuple[Array, Array] | None]:
    """x [B, T, D], positions [B, T], mask bool[B, T, S] -> ([B, T, D], updated (k, v) or None).

    Without a cache S = T; with one, k/v [B, S, K, Hd] get this call's keys written at kv_index.
    """
    cfg = self.cfg
    n, k_heads, h, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.width
    q_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=(0, 2))
    kv_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=2,
                                               out_axis=(1, 3), batch_axis=0)
    o_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2)
    q = Einsum((n, d, h), ("heads", "embed", "kv"), q_init, name="q_einsum")("btd,ndh->btnh", x)
    k, v = Einsum((2, k_heads, d, h), (None, "heads", "embed", "kv"), kv_init,
                  name="kv_einsum")("btd,ckdh->cbtkh", x)
    q = apply_rope(q, positions, cfg.rope_max_wavelength)
    k = apply_rope(k, positions, cfg.rope_max_wavelength)
    q = q * jnp.asarray(h ** -0.5, q.dtype)
    new_cache = None
    if kv_cache is not None:
      k = jax.lax.dynamic_update_slice(kv_cache[0], k.astype(kv_cache[0].dtype),
                                       (0, kv_index, 0, 0))
      v = jax.lax.dynamic_update_slice(kv_cache[1], v.astype(kv_cache[1].dtype),
                                       (0, kv_index, 0, 0))
      new_cache = (k, v)
    b, t = q.shape[:2]
    qg = q.reshape(b, t, k_heads, n // k_heads, h)
    logits = jnp.einsum("btkgh,bskh->bkgts", qg, k.astype(q.dtype),
                        preferred_element_type=jnp.float32)
    if cfg.attn_logits_softcap is not None:
      logits = jnp.tanh(logits / cfg.attn_logits_softcap) * cfg.attn_logits_softcap
    logits = jnp.where(mask[:, None, None, :, :], logits, layers.NEG_INF)
    probs = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
    enc = jnp.einsum("bkgts,bskh->btkgh", probs, v.astype(q.dtype)).reshape(b, t, n, h)
    out = Einsum((n, h, d), ("heads", "kv", "embed"), o_init,
                 name="attn_vec_einsum")("btnh,nhd->btd", enc)
    return out, new_cache


class FeedForward(nn.Module):
  """GeGLU: gelu_tanh(x W0) * (x W1) then `linear`."""
  cfg: GemmaConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    d, f = self.cfg.width, self.cfg.mlp_dim
    g_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=2,
                                              batch_axis=0)
    w = layers.logical_param(self, "gating_einsum", g_init, (2, d, f), (None, "embed", "mlp"))
    w2 = layers.logical_param(self, "linear", nn.initializers.lecun_normal(), (f, d),
                              ("mlp", "embed"))
    w = w.astype(x.dtype)
    gate = nn.gelu(jnp.einsum("btd,df->btf", x, w[0]), approximate=True)
    hidden = gate * jnp.einsum("btd,df->btf", x, w[1])
    hidden = layers.constrain(hidden, ("batch", "length", "mlp"))
    return jnp.einsum("btf,fd->btd", hidden, w2.astype(x.dtype))


class Block(nn.Module):
  """One decoder layer; returns (x, new layer cache) so it can be the body of `nn.scan`."""
  cfg: GemmaConfig

  @nn.compact
  def __call__(self, x: Array, positions: Array, global_mask: Array, local_mask: Array | None,
               kv_index: Array | None, kv_cache: tuple[Array, Array] | None, layer_idx: Array,
               ) -> tuple[Array, tuple[Array, Array] | None]:
    cfg = self.cfg
    dtype = jnp.dtype(cfg.dtype)
    x = layers.constrain(x, ("batch", "length", "embed"))
    mask = global_mask
    if local_mask is not None:  # Gemma 2: even layers are local (sliding window)
      mask = jnp.where(layer_idx % 2 == 0, local_mask, global_mask)
    y = RMSNorm(dtype, name="pre_attention_norm")(x)
    y, new_cache = Attention(cfg, name="attn")(y, positions, mask, kv_cache, kv_index)
    if cfg.post_norms:
      y = RMSNorm(dtype, name="post_attention_norm")(y)
    x = x + y
    y = RMSNorm(dtype, name="pre_ffw_norm")(x)
    y = FeedForward(cfg, name="mlp")(y)
    if cfg.post_norms:
      y = RMSNorm(dtype, name="post_ffw_norm")(y)
    x = layers.constrain(x + y, ("batch", "length", "embed"))
    return x, new_cache


class Gemma(nn.Module):
  """Decoder LM. See the module docstring for the tree, numerics and decoding API."""
  cfg: GemmaConfig

  def setup(self):
    cfg = self.cfg
    dtype = jnp.dtype(cfg.dtype)
    self.embedder = Embedder(cfg.vocab_size, cfg.width, dtype)
    block = layers.maybe_remat(Block, cfg.remat_policy, prevent_cse=not cfg.scan)
    if cfg.scan:
      self.layers = nn.scan(
          block, variable_axes={"params": 0}, split_rngs={"params": True},
          in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, 0, 0),
          length=cfg.depth, metadata_params={nn.PARTITION_NAME: "layers"})(cfg)
    else:
      self.layers = [block(cfg) for _ in range(cfg.depth)]  # named layers_{i}
    self.final_norm = RMSNorm(dtype)

  def embed(self, tokens: Array) -> Array:
    """int[B, L] -> embedded text [B, L, D] (scaled by sqrt(D))."""
    return self.embedder.encode(tokens)

  def logits(self, hidden: Array) -> Array:
    """Final-normed hidden [B, L, D] -> float32 logits [B, L, V] (optionally soft-capped)."""
    logits = self.embedder.decode(hidden)
    cap = self.cfg.final_logits_softcap
    if cap is not None:
      logits = jnp.tanh(logits / cap) * cap
    return layers.constrain(logits, ("batch", "length", "vocab"))

  def transform(self, x: Array, positions: Array, attn_mask: Array,
                kv: tuple[Array, Array] | None = None, kv_index: Array | None = None,
                ) -> tuple[Array, tuple[Array, Array] | None]:
    """All layers + final norm.

    x [B, T, D] embedded, positions int[B, T], attn_mask bool[B, T, S]; kv is (k, v) each
    [L, B, S, K, Hd] (S == T without a cache) with this call's keys written at slot kv_index.
    Returns (hidden [B, T, D], updated kv or None).
    """
    cfg = self.cfg
    x = x.astype(jnp.dtype(cfg.dtype))
    local_mask = None
    if cfg.sliding_window is not None:
      t, s = attn_mask.shape[1:]
      q_slots = jnp.arange(t) + (0 if kv_index is None else kv_index)
      near = jnp.abs(q_slots[:, None] - jnp.arange(s)[None, :]) < cfg.sliding_window
      local_mask = jnp.logical_and(attn_mask, near[None])
    layer_idx = jnp.arange(cfg.depth)
    if cfg.scan:
      x, kv = self.layers(x, positions, attn_mask, local_mask, kv_index, kv, layer_idx)
    else:
      new_k, new_v = [], []
      for i, block in enumerate(self.layers):
        layer_kv = None if kv is None else (kv[0][i], kv[1][i])
        x, layer_kv = block(x, positions, attn_mask, local_mask, kv_index, layer_kv, layer_idx[i])
        if layer_kv is not None:
          new_k.append(layer_kv[0])
          new_v.append(layer_kv[1])
      kv = None if kv is None else (jnp.stack(new_k), jnp.stack(new_v))
    return self.final_norm(x), kv

  def __call__(self, tokens: Array, mask_input: Array, mask_ar: Array) -> Array:
    """Full forward of a token sequence. tokens, mask_input, mask_ar int[B, L] -> f32[B, L, V]."""
    x = self.embed(tokens)
    hidden, _ = self.transform(x, positions_from_mask(mask_input),
                               make_attn_mask(mask_input, mask_ar))
    return self.logits(hidden)

  def prefill(self, x: Array, mask_input: Array, mask_ar: Array, cache_size: int,
              ) -> tuple[Array, Cache]:
    """Runs the prompt x [B, P, D] into a fresh cache of `cache_size` slots.

    Returns the logits f32[B, V] at each row's last valid prompt token and the cache.
    """
    cfg = self.cfg
    b, p = mask_input.shape
    if cache_size < p:
      raise ValueError(f"cache_size {cache_size} < prompt length {p}")
    cache = init_cache(cfg, b, cache_size)
    attn = make_attn_mask(mask_input, mask_ar)
    attn = jnp.pad(attn, ((0, 0), (0, 0), (0, cache_size - p)))
    hidden, (k, v) = self.transform(x, positions_from_mask(mask_input), attn,
                                    (cache["k"], cache["v"]), jnp.zeros((), jnp.int32))
    last = jnp.max(jnp.where(mask_input != 0, jnp.arange(p)[None, :], 0), axis=1)
    hidden_last = jnp.take_along_axis(hidden, last[:, None, None], axis=1)  # [B, 1, D]
    logits = self.logits(hidden_last)[:, 0]
    mask = jnp.pad(mask_input != 0, ((0, 0), (0, cache_size - p)))
    return logits, {"k": k, "v": v, "mask": mask,
                    "pos": jnp.sum(mask_input != 0, axis=1).astype(jnp.int32),
                    "index": jnp.asarray(p, jnp.int32)}

  def extend(self, x: Array, cache: Cache) -> tuple[Array, Cache]:
    """One decoding step: x [B, 1, D] (an embedded token) -> (logits f32[B, V], cache)."""
    index = cache["index"]
    mask = jax.lax.dynamic_update_slice(cache["mask"], jnp.ones((x.shape[0], 1), jnp.bool_),
                                        (0, index))
    hidden, (k, v) = self.transform(x, cache["pos"][:, None], mask[:, None, :],
                                    (cache["k"], cache["v"]), index)
    logits = self.logits(hidden)[:, 0]
    return logits, {"k": k, "v": v, "mask": mask, "pos": cache["pos"] + 1, "index": index + 1}
