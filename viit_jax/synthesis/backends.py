"""LLM back-ends for instruction synthesis, behind one small interface.

    backend.complete(prompts: Sequence[Prompt]) -> list[Completion]   (same order as prompts)

A `Completion` holds either the reply text or an error reason (after retries); it never raises for
a bad reply or a failed request: the caller validates text and counts errors as rejects.

* `RulesBackend` ("rules"): a rule-based stand-in for an LLM (see synthesis/rules.py), offline.
* `OpenAIBackend` ("openai"): any OpenAI-compatible /chat/completions server (vLLM, llama.cpp
  server, hosted APIs). Threads for concurrency, a timeout per request, retries with exponential
  backoff and jitter on 429/5xx/timeouts/connection errors (Retry-After honoured), a token-bucket
  request-rate limit, the API key from an environment variable named in config, and a persistent
  `ReplyCache` keyed by the hash of the request payload.
* `LocalGemmaBackend` ("local", synthesis/local_gemma.py): our Gemma decoder sampling through
  viit_jax.decoding; the Gemma turn format (`render_gemma_prompt`, `parse_gemma_reply`) is here.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

import ml_collections

from viit_jax.synthesis import cache as cache_lib
from viit_jax.synthesis import rules
from viit_jax.synthesis import templates

_BEARER = re.compile(r"Bearer\s+[^\s\"',}]+")  # A bearer token inside a server's text.


@dataclasses.dataclass(frozen=True)
class Completion:
  """The outcome of one prompt: `text` on success, else `error` (a short reason) and `detail`."""
  prompt_id: str
  text: str | None
  error: str | None = None
  detail: str = ""
  attempts: int = 0         # requests sent for this prompt in this run (0 when cached)
  cached: bool = False


class Backend(Protocol):
  name: str                 # "rules" | "openai" | "local"
  model_name: str

  def complete(self, prompts: Sequence[templates.Prompt]) -> list[Completion]:
    ...

  def stats(self) -> dict[str, Any]:
    """Counters for the manifest (requests, retries by reason, cache hits, errors by reason)."""
    ...

  def sync(self) -> None:
    """Publishes the replies received so far where the reply cache needs it (an object store,
    see synthesis/cache.py); called after each finished work unit."""
    ...

  def close(self) -> None:
    """Syncs and releases the reply cache."""
    ...


class Stats:
  """Thread-safe counters."""

  def __init__(self):
    self._lock = threading.Lock()
    self._counts: collections.Counter[str] = collections.Counter()

  def add(self, key: str, n: int = 1) -> None:
    with self._lock:
      self._counts[key] += n

  def as_dict(self) -> dict[str, int]:
    with self._lock:
      return dict(sorted(self._counts.items()))


class RulesBackend:
  """Offline STAND-IN for an LLM: pairs written by rule from the narrative text in each prompt.

  It reads `prompt.narrative` (the same sentences the LLM prompt contains) and nothing else; no
  hidden world state. Its output exists so the pipeline runs end to end without a language model;
  the manifest marks datasets it wrote as `stand_in_for_llm: true`.
  """
  name = "rules"
  model_name = "rules-v1 (rule-based stand-in, not an LLM)"

  def __init__(self, seed: int):
    self._seed = seed
    self._stats = Stats()

  def complete(self, prompts: Sequence[templates.Prompt]) -> list[Completion]:
    out = []
    for p in prompts:
      pair = rules.write_pair(p.narrative, p.kind, self._seed)
      self._stats.add("requests")
      text = templates.format_reply(*pair) if pair else ""   # "" -> rejected as empty_reply
      out.append(Completion(p.prompt_id, text, attempts=1))
    return out

  def stats(self) -> dict[str, Any]:
    return self._stats.as_dict()

  def sync(self) -> None:  # No reply cache: replies are recomputed.
    pass

  def close(self) -> None:
    pass


def payload_key(payload: dict[str, Any]) -> str:
  """The cache key of a request: sha256 of its canonical JSON (model, messages, sampling)."""
  return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
                        ).hexdigest()


class TokenBucket:
  """Request-rate limit: `rate` tokens per second, at most `burst` banked; rate <= 0: no limit."""

  def __init__(self, rate: float, burst: int):
    self._rate = rate
    self._burst = max(1, burst)
    self._tokens = float(self._burst)
    self._last = time.monotonic()
    self._lock = threading.Lock()

  def acquire(self) -> None:
    if self._rate <= 0:
      return
    while True:
      with self._lock:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
          self._tokens -= 1
          return
        wait = (1 - self._tokens) / self._rate
      time.sleep(wait)


def _retry_after_s(value: str | None) -> float | None:
  """Parses a Retry-After header: delta-seconds or an HTTP date."""
  if not value:
    return None
  try:
    return max(0.0, float(value))
  except ValueError:
    pass
  try:
    when = email.utils.parsedate_to_datetime(value)
  except (TypeError, ValueError):
    return None
  return max(0.0, when.timestamp() - time.time())


@dataclasses.dataclass(frozen=True)
class _Attempt:
  text: str | None
  error: str | None        # None on success
  retryable: bool
  detail: str
  retry_after_s: float | None


class OpenAIBackend:
  """OpenAI-compatible chat-completions client (see module docstring).

  Args:
    cfg: config.openai (base_url, model, api_key_env, concurrency, timeout_s, max_retries,
      backoff_base_s, backoff_max_s, retry_after_max_s, requests_per_second, burst, temperature,
      top_p, max_tokens).
    cache: replies received are stored here at once; prompts found here are not sent.
  """
  name = "openai"

  def __init__(self, cfg: ml_collections.ConfigDict, cache: cache_lib.ReplyCache):
    if not cfg.model:
      raise ValueError("openai back-end: config.openai.model is empty; name the served model")
    if not cfg.base_url.startswith(("http://", "https://")):
      raise ValueError(f"openai back-end: config.openai.base_url {cfg.base_url!r} is not http(s)")
    self._api_key = None
    if cfg.api_key_env:
      self._api_key = os.environ.get(cfg.api_key_env)
      if not self._api_key:
        raise ValueError(f"openai back-end: environment variable {cfg.api_key_env!r} "
                         "(config.openai.api_key_env) is not set; set it, or set api_key_env='' "
                         "for a server without keys")
    self._cfg = cfg
    self.model_name = cfg.model
    self._url = cfg.base_url.rstrip("/") + "/chat/completions"
    self._cache = cache
    self._bucket = TokenBucket(cfg.requests_per_second, cfg.burst)
    self._stats = Stats()
    self._rng = random.Random()
    self._rng_lock = threading.Lock()

  def payload(self, prompt: templates.Prompt) -> dict[str, Any]:
    return {"model": self._cfg.model, "messages": [dict(m) for m in prompt.messages],
            "temperature": self._cfg.temperature, "top_p": self._cfg.top_p,
            "max_tokens": self._cfg.max_tokens}

  def stats(self) -> dict[str, Any]:
    return self._stats.as_dict()

  def sync(self) -> None:
    self._cache.sync()

  def close(self) -> None:
    self._cache.close()

  def complete(self, prompts: Sequence[templates.Prompt]) -> list[Completion]:
    results: list[Completion | None] = [None] * len(prompts)
    todo: dict[str, tuple[templates.Prompt, dict[str, Any], list[int]]] = {}
    for i, p in enumerate(prompts):
      payload = self.payload(p)
      key = payload_key(payload)
      hit = self._cache.get(key)
      if hit is not None:
        self._stats.add("cache_hits")
        results[i] = Completion(p.prompt_id, hit, cached=True)
      elif key in todo:   # the same request twice in one batch is sent once
        self._stats.add("deduplicated")
        todo[key][2].append(i)
      else:
        todo[key] = (p, payload, [i])
    if todo:
      with concurrent.futures.ThreadPoolExecutor(self._cfg.concurrency) as pool:
        futures = {pool.submit(self._one, p, payload, key): where
                   for key, (p, payload, where) in todo.items()}
        for fut in concurrent.futures.as_completed(futures):
          done = fut.result()
          for i in futures[fut]:
            results[i] = dataclasses.replace(done, prompt_id=prompts[i].prompt_id)
    return [r for r in results if r is not None]

  def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
    cap = min(self._cfg.backoff_max_s, self._cfg.backoff_base_s * 2 ** attempt)
    with self._rng_lock:
      delay = cap * (0.5 + 0.5 * self._rng.random())   # exponential, jittered in [cap/2, cap]
    if retry_after is not None:
      delay = max(delay, min(retry_after, self._cfg.retry_after_max_s))
    return delay

  def _one(self, prompt: templates.Prompt, payload: dict[str, Any], key: str) -> Completion:
    body = json.dumps(payload, ensure_ascii=False).encode()
    attempt = 0
    while True:
      self._bucket.acquire()
      self._stats.add("requests")
      result = self._send(body)
      attempt += 1
      if result.error is None:
        assert result.text is not None
        self._cache.put(key, prompt.prompt_id, result.text)
        return Completion(prompt.prompt_id, result.text, attempts=attempt)
      if not result.retryable or attempt > self._cfg.max_retries:
        self._stats.add(f"errors/{result.error}")
        return Completion(prompt.prompt_id, None, result.error, result.detail, attempts=attempt)
      self._stats.add(f"retries/{result.error}")
      time.sleep(self._backoff_s(attempt - 1, result.retry_after_s))

  def _redact(self, text: str) -> str:
    """A server's text without the API key (servers echo credentials in error bodies): the key
    and any bearer token are replaced before the text reaches a rejects file or a log."""
    if self._api_key:
      text = text.replace(self._api_key, "[redacted]")
    return _BEARER.sub("Bearer [redacted]", text)

  def _send(self, body: bytes) -> _Attempt:
    headers = {"Content-Type": "application/json"}
    if self._api_key:
      headers["Authorization"] = f"Bearer {self._api_key}"
    request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
    try:
      with urllib.request.urlopen(request, timeout=self._cfg.timeout_s) as resp:
        raw = resp.read()
    except urllib.error.HTTPError as e:
      detail = self._redact(e.read()[:2000].decode("utf-8", "replace") if e.fp else "")
      retryable = e.code == 429 or e.code >= 500
      return _Attempt(None, f"http_{e.code}", retryable, detail,
                      _retry_after_s(e.headers.get("Retry-After")) if e.headers else None)
    except (TimeoutError, socket.timeout) as e:
      return _Attempt(None, "timeout", True, str(e), None)
    except urllib.error.URLError as e:
      if isinstance(e.reason, (TimeoutError, socket.timeout)):
        return _Attempt(None, "timeout", True, str(e), None)
      return _Attempt(None, "connection_error", True, str(e), None)
    except (ConnectionError, http.client.HTTPException, OSError) as e:
      return _Attempt(None, "connection_error", True, f"{type(e).__name__}: {e}", None)
    text = raw.decode("utf-8", "replace")
    try:
      content = json.loads(text)["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
      # Not retried: a server that returns broken JSON usually does so again.
      return _Attempt(None, "malformed_response", False,
                      self._redact(f"{type(e).__name__}: {e}; body: {text[:2000]}"), None)
    if not isinstance(content, str):
      return _Attempt(None, "malformed_response", False, f"content is {type(content).__name__}",
                      None)
    return _Attempt(content, None, False, "", None)


def render_gemma_prompt(prompt: templates.Prompt) -> str:
  """The chat as Gemma's turn format (no system role: it opens the first user turn)."""
  parts: list[str] = []
  system = ""
  for m in prompt.messages:
    if m["role"] == "system":
      system = m["content"]
      continue
    role = "model" if m["role"] == "assistant" else "user"
    content = m["content"]
    if role == "user" and system:
      content, system = f"{system}\n\n{content}", ""
    parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
  parts.append("<start_of_turn>model\n")
  return "".join(parts)


def parse_gemma_reply(decoded: str) -> str:
  """The model turn's text: everything before the first end-of-turn marker."""
  return decoded.split("<end_of_turn>", 1)[0].split("<start_of_turn>", 1)[0].strip()


def make(config: ml_collections.ConfigDict, cache_path: str) -> Backend:
  """The back-end named by config.backend; the cache is opened only for back-ends that use one."""
  if config.backend == "rules":
    return RulesBackend(config.seed)
  if config.backend == "openai":
    return OpenAIBackend(config.openai, cache_lib.ReplyCache(cache_path))
  if config.backend == "local":   # imported here: only this back-end needs JAX
    from viit_jax.synthesis import local_gemma  # pylint: disable=g-import-not-at-top
    return local_gemma.LocalGemmaBackend(config.local, cache_path)
  raise ValueError(f"unknown config.backend {config.backend!r}; expected rules, openai or local")
