"""Transformer building blocks shared by the ViT, the text tower and the MAP head.

Parameter names and shapes follow big_vision's `vit.py` exactly (docs/checkpoints.md), so public SigLIP and
PaliGemma weights load by renaming only. Every parameter carries logical axis names (`embed`, `mlp`,
`heads`, `kv`, and `layers` added by `nn.scan`); viit_jax/sharding.py maps them to mesh axes.

Numerics (SigLIP): pre-LN blocks `x + MHA(LN0(x))`, `x + MLP(LN1(x))`, LayerNorm eps 1e-6, GELU with the
tanh approximation, attention scaled by Hd^-0.5 with biases. Parameters are float32; matmuls run in the
module's compute `dtype`; normalisation statistics and attention logits are float32.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Initializer = Callable[..., Array]
Dtype = Any

# Remat policies selectable from configs (`remat_policy`): `none` disables rematerialisation.
REMAT_POLICIES: dict[str, Callable[..., bool] | None] = {
    "full": None,  # save nothing: recompute the whole block on the backward pass
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
}

# Finite stand-in for -inf in masked attention logits (a fully masked row stays finite).
NEG_INF = -2.3819763e38


def logical_param(module: nn.Module, name: str, init: Initializer, shape: Sequence[int],
                  axes: Sequence[str | None]) -> Array:
  """Creates a float32 parameter tagged with logical axis names (one per dimension)."""
  if len(axes) != len(shape):
    raise ValueError(f"{name}: {len(axes)} axis names {tuple(axes)} for shape {tuple(shape)}")
  return module.param(name, nn.with_logical_partitioning(init, tuple(axes)), tuple(shape),
                      jnp.float32)


def constrain(x: Array, axes: Sequence[str | None]) -> Array:
  """Logical sharding constraint on an activation (a no-op outside a mesh context)."""
  return nn.with_logical_constraint(x, tuple(axes))


def remat_policy(name: str) -> Callable[..., bool] | None:
  if name not in REMAT_POLICIES:
    raise ValueError(f"unknown remat_policy {name!r}; one of {['none', *REMAT_POLICIES]}")
  return REMAT_POLICIES[name]


def maybe_remat(block_cls: type[nn.Module], policy: str, prevent_cse: bool) -> type[nn.Module]:
  """Wraps a block class in `nn.remat` unless policy is `none`."""
  if policy == "none":
    return block_cls
  return nn.remat(block_cls, prevent_cse=prevent_cse, policy=remat_policy(policy))


class LayerNorm(nn.Module):
  """LayerNorm with `scale` and `bias` [D] (eps 1e-6), statistics in float32."""
  dtype: Dtype = jnp.float32
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x: Array) -> Array:
    d = x.shape[-1]
    scale = logical_param(self, "scale", nn.initializers.ones, (d,), ("embed",))
    bias = logical_param(self, "bias", nn.initializers.zeros, (d,), ("embed",))
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
    y = (xf - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias
    return y.astype(self.dtype)


class Dense(nn.Module):
  """`kernel` [D_in, F] and `bias` [F] with logical names `axes` = (in, out)."""
  features: int
  axes: tuple[str | None, str | None]
  dtype: Dtype = jnp.float32
  kernel_init: Initializer = nn.initializers.xavier_uniform()
  bias_init: Initializer = nn.initializers.normal(stddev=1e-6)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = logical_param(self, "kernel", self.kernel_init, (x.shape[-1], self.features), self.axes)
    bias = logical_param(self, "bias", self.bias_init, (self.features,), self.axes[1:])
    y = jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


class MlpBlock(nn.Module):
  """`Dense_0` [D, F] -> GELU(tanh) -> `Dense_1` [F, D]."""
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    d = x.shape[-1]
    h = Dense(self.mlp_dim, ("embed", "mlp"), self.dtype, name="Dense_0")(x)
    h = nn.gelu(h, approximate=True)
    return Dense(d, ("mlp", "embed"), self.dtype, name="Dense_1")(h)


class _HeadsIn(nn.Module):
  """`kernel` [D, N, Hd], `bias` [N, Hd]: projection of x [..., D] to heads [..., N, Hd]."""
  num_heads: int
  head_dim: int
  dtype: Dtype

  @nn.compact
  def __call__(self, x: Array) -> Array:
    init = nn.initializers.xavier_uniform(in_axis=0, out_axis=(1, 2))
    kernel = logical_param(self, "kernel", init, (x.shape[-1], self.num_heads, self.head_dim),
                           ("embed", "heads", "kv"))
    bias = logical_param(self, "bias", nn.initializers.zeros, (self.num_heads, self.head_dim),
                         ("heads", "kv"))
    y = jnp.einsum("...d,dnh->...nh", x.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


class _HeadsOut(nn.Module):
  """`kernel` [N, Hd, D], `bias` [D]: projection of heads [..., N, Hd] back to [..., D]."""
  features: int
  dtype: Dtype

  @nn.compact
  def __call__(self, x: Array) -> Array:
    n, h = x.shape[-2:]
    init = nn.initializers.xavier_uniform(in_axis=(0, 1), out_axis=2)
    kernel = logical_param(self, "kernel", init, (n, h, self.features), ("heads", "kv", "embed"))
    bias = logical_param(self, "bias", nn.initializers.zeros, (self.features,), ("embed",))
    y = jnp.einsum("...nh,nhd->...d", x.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


def dot_product_attention(q: Array, k: Array, v: Array, mask: Array | None = None) -> Array:
  """Softmax attention, logits and softmax in float32.

  q: [B, Q, N, Hd], k and v: [B, S, N, Hd], mask: bool broadcastable to [B, N, Q, S] or None.
  Returns [B, Q, N, Hd] in v's dtype. q is scaled by Hd^-0.5 here.
  """
  q = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
  logits = jnp.einsum("bqnh,bsnh->bnqs", q, k, preferred_element_type=jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, NEG_INF)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bnqs,bsnh->bqnh", probs, v)


class MultiHeadDotProductAttention(nn.Module):
  """big_vision's MHA layout: `query`, `key`, `value` [D, N, Hd] (+ bias [N, Hd]), `out` [N, Hd, D]."""
  num_heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array, mask: Array | None = None) -> Array:
    """inputs_q [B, Q, D], inputs_kv [B, S, D] -> [B, Q, D]."""
    d = inputs_q.shape[-1]
    if d % self.num_heads:
      raise ValueError(f"width {d} is not divisible by num_heads {self.num_heads}")
    hd = d // self.num_heads
    q = _HeadsIn(self.num_heads, hd, self.dtype, name="query")(inputs_q)
    k = _HeadsIn(self.num_heads, hd, self.dtype, name="key")(inputs_kv)
    v = _HeadsIn(self.num_heads, hd, self.dtype, name="value")(inputs_kv)
    out = dot_product_attention(q, k, v, mask)
    return _HeadsOut(d, self.dtype, name="out")(out)


class Encoder1DBlock(nn.Module):
  """Pre-LN transformer block. Returns `(x, None)` so it can be the body of `nn.scan`."""
  mlp_dim: int
  num_heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, _: Any = None) -> tuple[Array, None]:
    """x: [B, N, D] -> ([B, N, D], None)."""
    x = constrain(x, ("batch", "length", "embed"))
    y = LayerNorm(self.dtype, name="LayerNorm_0")(x)
    y = MultiHeadDotProductAttention(self.num_heads, self.dtype,
                                     name="MultiHeadDotProductAttention_0")(y, y)
    x = x + y
    y = LayerNorm(self.dtype, name="LayerNorm_1")(x)
    y = MlpBlock(self.mlp_dim, self.dtype, name="MlpBlock_0")(y)
    x = constrain(x + y, ("batch", "length", "embed"))
    return x, None


class Encoder(nn.Module):
  """Stack of `depth` blocks and a final `encoder_norm`.

  With `scan=True` the blocks are one `nn.scan` named `encoderblock` whose parameters carry a leading
  [depth] axis (logical name `layers`); otherwise they are `encoderblock_{i}` (big_vision's per-layer
  layout). The importer converts between the two.
  """
  depth: int
  mlp_dim: int
  num_heads: int
  scan: bool = True
  remat_policy: str = "none"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """x: [B, N, D] -> [B, N, D]."""
    block = maybe_remat(Encoder1DBlock, self.remat_policy, prevent_cse=not self.scan)
    if self.scan:
      stack = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True},
                      length=self.depth, metadata_params={nn.PARTITION_NAME: "layers"})
      x, _ = stack(self.mlp_dim, self.num_heads, self.dtype, name="encoderblock")(x, None)
    else:
      for i in range(self.depth):
        x, _ = block(self.mlp_dim, self.num_heads, self.dtype, name=f"encoderblock_{i}")(x, None)
    return LayerNorm(self.dtype, name="encoder_norm")(x)


class MAPHead(nn.Module):
  """Multihead attention pooling: `probe` [1, 1, D] attends to x; out = a + MLP(LN(a)), token 0."""
  mlp_dim: int
  num_heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """x: [B, N, D] -> [B, D]."""
    b, _, d = x.shape
    probe = logical_param(self, "probe", nn.initializers.xavier_uniform(), (1, 1, d),
                          (None, None, "embed"))
    probe = jnp.broadcast_to(probe.astype(self.dtype), (b, 1, d))
    a = MultiHeadDotProductAttention(self.num_heads, self.dtype,
                                     name="MultiHeadDotProductAttention_0")(probe, x)
    y = LayerNorm(self.dtype, name="LayerNorm_0")(a)
    a = a + MlpBlock(self.mlp_dim, self.dtype, name="MlpBlock_0")(y)
    return a[:, 0]
