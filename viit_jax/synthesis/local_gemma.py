"""The `local` synthesis back-end: our Gemma decoder samples the replies (viit_jax.decoding).

The chat is rendered in Gemma's turn format (`render_gemma_prompt`), tokenised with the
checkpoint's SentencePiece model ([BOS] + pieces, right-padded to `max_prompt_len` so one
compiled decode function serves every batch), sampled with nucleus sampling through
`decoding.Decoder(LMAdapter)` until the stop piece (Gemma's "<end_of_turn>"; EOS when the
tokenizer has no such piece), and cut at the end of the model turn (`parse_gemma_reply`).

Parameters come from an orbax workdir (trainer or `viit_jax.import_weights` output) or a `.npz`,
restored straight into their shardings on this process's devices; `param_prefix` ("llm/") takes
the LM out of a VLM checkpoint. Sampling is deterministic per prompt: the decoder's example id is
derived from the request hash, so a reply does not depend on batch composition. Replies go to the
same persistent `ReplyCache` as the openai back-end (key: model, rendered prompt, sampling).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import sentencepiece

from viit_jax import checkpoints
from viit_jax import decoding
from viit_jax import sharding as sharding_lib
from viit_jax.models import gemma as gemma_lib
from viit_jax.models import variants
from viit_jax.models import vlm as vlm_lib
from viit_jax.synthesis import backends
from viit_jax.synthesis import cache as cache_lib
from viit_jax.synthesis import templates


class LocalGemmaBackend:
  """See the module docstring.

  Args:
    cfg: config.local (variant, checkpoint, step, param_prefix, vocab, stop_piece, temperature,
      top_p, max_decode_len, max_prompt_len, batch_size, seed).
    cache_path: the reply cache (JSONL).
  """
  name = "local"

  def __init__(self, cfg: ml_collections.ConfigDict, cache_path: str):
    if not cfg.checkpoint or not (os.path.isdir(cfg.checkpoint) or os.path.isfile(cfg.checkpoint)):
      raise FileNotFoundError(f"local back-end: config.local.checkpoint {cfg.checkpoint!r} is "
                              "neither a checkpoint workdir nor a .npz file")
    if not os.path.isfile(cfg.vocab):
      raise FileNotFoundError(f"local back-end: SentencePiece model {cfg.vocab!r} not found")
    model_cfg = variants.get_config(cfg.variant)
    if isinstance(model_cfg, vlm_lib.VLMConfig):
      model_cfg = model_cfg.llm
    if not isinstance(model_cfg, gemma_lib.GemmaConfig):
      raise ValueError(f"local back-end: variant {cfg.variant!r} is not a Gemma or VLM variant")
    self._cfg = cfg
    self.model_name = f"gemma:{cfg.variant}:{os.path.abspath(cfg.checkpoint)}"
    self._sp = sentencepiece.SentencePieceProcessor(model_file=cfg.vocab)
    if self._sp.vocab_size() > model_cfg.vocab_size:
      raise ValueError(f"tokenizer has {self._sp.vocab_size()} pieces, the model "
                       f"{model_cfg.vocab_size}")
    stop = self._sp.piece_to_id(cfg.stop_piece) if cfg.stop_piece else self._sp.unk_id()
    self._stop_id = stop if stop != self._sp.unk_id() else self._sp.eos_id()

    mesh = decoding.local_mesh({"data": 1, "fsdp": -1, "tensor": 1})
    boxed = variants.abstract_params(model_cfg)
    shardings = sharding_lib.logical_to_shardings(boxed, mesh)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            nn.unbox(boxed), shardings)
    assignment = ((r"(.*)", cfg.param_prefix + r"\1"),) if cfg.param_prefix else ()
    self._params, report = checkpoints.load_params_into(abstract, cfg.checkpoint,
                                                        assignment_map=assignment, step=cfg.step)
    if report.kept:
      raise ValueError(f"{cfg.checkpoint} does not provide {len(report.kept)} Gemma parameters "
                       f"(e.g. {list(report.kept[:5])}; param_prefix={cfg.param_prefix!r})")
    self._dcfg = decoding.DecodeConfig(
        sampler="nucleus", max_decode_len=cfg.max_decode_len, temperature=cfg.temperature,
        top_p=cfg.top_p, eos_id=self._stop_id,
        valid_vocab_size=self._sp.vocab_size() if self._sp.vocab_size() < model_cfg.vocab_size
        else 0)
    self._decoder = decoding.Decoder(decoding.LMAdapter(gemma_lib.Gemma(model_cfg)), self._dcfg,
                                     mesh)
    self._cache = cache_lib.ReplyCache(cache_path)
    self._stats = backends.Stats()

  def stats(self) -> dict[str, Any]:
    return self._stats.as_dict()

  def sync(self) -> None:
    self._cache.sync()

  def close(self) -> None:
    self._cache.close()

  def request_key(self, rendered: str) -> str:
    blob = {"model": self.model_name, "prompt": rendered, "sampling": self._dcfg.settings(),
            "top_p": self._cfg.top_p, "seed": self._cfg.seed,
            "max_prompt_len": self._cfg.max_prompt_len}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

  def complete(self, prompts: Sequence[templates.Prompt]) -> list[backends.Completion]:
    results: list[backends.Completion | None] = [None] * len(prompts)
    todo: list[tuple[int, str, list[int]]] = []   # (index, key, token ids)
    for i, p in enumerate(prompts):
      rendered = backends.render_gemma_prompt(p)
      key = self.request_key(rendered)
      hit = self._cache.get(key)
      if hit is not None:
        self._stats.add("cache_hits")
        results[i] = backends.Completion(p.prompt_id, hit, cached=True)
        continue
      ids = [self._sp.bos_id(), *self._sp.encode(rendered)]
      if len(ids) > self._cfg.max_prompt_len:
        self._stats.add("errors/prompt_too_long")
        results[i] = backends.Completion(
            p.prompt_id, None, "prompt_too_long",
            f"{len(ids)} tokens > config.local.max_prompt_len={self._cfg.max_prompt_len}")
        continue
      todo.append((i, key, ids))
    step = self._cfg.batch_size
    for start in range(0, len(todo), step):
      chunk = todo[start:start + step]
      rows = -(-len(chunk) // self._decoder.batch_divisor) * self._decoder.batch_divisor
      tokens = np.zeros((rows, self._cfg.max_prompt_len), np.int32)
      mask = np.zeros_like(tokens)
      example_ids = np.zeros((rows,), np.int32)
      for r, (_, key, ids) in enumerate(chunk):
        tokens[r, :len(ids)] = ids
        mask[r, :len(ids)] = 1
        example_ids[r] = int(key[:7], 16)   # < 2^28: a stable per-request sampling stream
      mask[len(chunk):, 0] = 1              # padding rows: a one-token prompt, output dropped
      out = self._decoder(self._params, {"tokens": tokens, "mask_input": mask}, example_ids,
                          seed=self._cfg.seed)
      self._stats.add("requests", len(chunk))
      self._stats.add("batches")
      for r, (i, key, _) in enumerate(chunk):
        ids = decoding.strip(out.tokens[r, 0], self._stop_id, self._dcfg.pad_id)
        text = backends.parse_gemma_reply(self._sp.decode(ids))
        self._cache.put(key, prompts[i].prompt_id, text)
        results[i] = backends.Completion(prompts[i].prompt_id, text, attempts=1)
    return [r for r in results if r is not None]
