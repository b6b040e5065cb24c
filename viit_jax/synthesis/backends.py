"""LLM back-ends for instruction synthesis, behind one small interface.

    backend.complete(prompts: Sequence[Prompt]) -> list[Completion]   (same order as prompts)

A `Completion` holds either the reply text or an error reason (after retries); it never raises for
a bad reply or a failed request: the caller validates text and counts errors as rejects.

* `RulesBackend` ("rules"): a rule-based stand-in for an LLM (see synthesis/rules.py), offline.
* `OpenAIBackend` ("openai"): any OpenAI-compatible /chat/completions server (vLLM, llama.cpp
  server, hosted APIs). Threads for concurrency, a socket timeout per read and a total deadline
  per request attempt (a server that drips bytes never trips a per-read timeout), retries with
  exponential backoff and jitter on 429/5xx/timeouts/deadlines/connection errors (Retry-After
  honoured; each back-off is logged and returned in `Completion.backoffs_s`), a token-bucket
  request-rate limit, the API key from an environment variable named in config, and a persistent
  `ReplyCache` keyed by the hash of the request payload.
* `LocalGemmaBackend` ("local", synthesis/local_gemma.py): our Gemma decoder sampling through
  viit_jax.decoding; the Gemma turn format (`render_gemma_prompt`, `parse_gemma_reply`) is here.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import email.message
import email.utils
import functools
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

from absl import logging
import ml_collections

from viit_jax.synthesis import cache as cache_lib
from viit_jax.synthesis import rules
from viit_jax.synthesis import templates

_BEARER = re.compile(r"Bearer\s+[^\s\"',}]+")  # A bearer token inside a server's text.
_READ_CHUNK = 65536       # Bytes asked of the socket per read of a reply body.
_ERROR_BODY_BYTES = 2000  # Of an error status's body, only this much is read (and kept as detail).


@dataclasses.dataclass(frozen=True)
class Completion:
  """The outcome of one prompt: `text` on success, else `error` (a short reason) and `detail`."""
  prompt_id: str
  text: str | None
  error: str | None = None
  detail: str = ""
  attempts: int = 0         # requests sent for this prompt in this run (0 when cached)
  cached: bool = False
  backoffs_s: tuple[float, ...] = ()  # the sleep before each retry, in order (openai back-end)


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


class _DeadlineExceeded(Exception):
  """An attempt's total deadline (config.openai.request_deadline_s) passed before its reply did."""


class _Deadline:
  """The total deadline of one request attempt: connect, request, status line, headers and body.

  A socket timeout bounds each read, not their sum: a server that sends a byte every few seconds
  keeps a request alive forever. A timer thread therefore shuts down the attempt's socket when the
  deadline passes; every read blocked on it then returns at once (EOF or an error), and `fired`
  tells the caller that the deadline, not the server, ended the exchange. Limitation: during an
  HTTPS TLS handshake the socket being watched is detached (ssl wraps its file descriptor into a
  new object), so the handshake itself is bounded only by the per-read timeout.
  """

  def __init__(self, seconds: float):
    self.seconds = seconds
    self._end = time.monotonic() + seconds
    self._lock = threading.Lock()
    self._sock: socket.socket | None = None
    self._fired = False
    self._finished = False
    self._timer = threading.Timer(seconds, self._fire)
    self._timer.daemon = True
    self._timer.start()

  @property
  def fired(self) -> bool:
    with self._lock:
      return self._fired

  def remaining(self) -> float:
    return self._end - time.monotonic()

  def watch(self, sock: socket.socket) -> socket.socket:
    """Makes `sock` the socket to shut down at the deadline (at once if it has passed)."""
    with self._lock:
      self._sock = sock
      if self._fired:
        _shutdown(sock)
    return sock

  def finish(self) -> None:
    """Ends the watch: the timer is cancelled and no socket is touched after this returns."""
    with self._lock:
      self._finished = True
      self._sock = None
    self._timer.cancel()

  def _fire(self) -> None:
    with self._lock:
      if self._finished:
        return
      self._fired = True
      if self._sock is not None:
        _shutdown(self._sock)


def _shutdown(sock: socket.socket) -> None:
  """Shuts down both directions of `sock`, which wakes a thread blocked reading it; the plain
  socket method is used on TLS sockets too, so the ssl object the reader uses stays intact."""
  try:
    socket.socket.shutdown(sock, socket.SHUT_RDWR)
  except OSError:   # Already closed by the reader, or never connected: nothing to wake.
    pass


class _WatchedHTTPConnection(http.client.HTTPConnection):
  """An HTTP connection whose socket `deadline` watches from the moment it is connected."""

  def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any):
    super().__init__(*args, **kwargs)
    create = self._create_connection
    self._create_connection = lambda *a, **kw: deadline.watch(create(*a, **kw))


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
  """An HTTPS connection whose sockets `deadline` watches: the TCP one once connected (a proxy
  CONNECT tunnel included), then the TLS one once the handshake is done."""

  def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any):
    super().__init__(*args, **kwargs)
    self._deadline = deadline
    create = self._create_connection
    self._create_connection = lambda *a, **kw: deadline.watch(create(*a, **kw))

  def connect(self) -> None:
    super().connect()
    self._deadline.watch(self.sock)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
  """urllib's http handler (proxies and redirects as usual) on a `_WatchedHTTPConnection`."""

  def __init__(self, deadline: _Deadline):
    super().__init__()
    self._deadline = deadline

  def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
    return self.do_open(functools.partial(_WatchedHTTPConnection, deadline=self._deadline), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
  """urllib's https handler (default TLS context) on a `_WatchedHTTPSConnection`."""

  def __init__(self, deadline: _Deadline):
    super().__init__()
    self._deadline = deadline

  def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
    return self.do_open(functools.partial(_WatchedHTTPSConnection, deadline=self._deadline), req,
                        context=self._context)


def _read_body(stream: Any, deadline: _Deadline, limit: int | None) -> bytes:
  """A response body (at most `limit` bytes; None: all of it), read a socket read at a time with
  the deadline checked between reads.

  Raises _DeadlineExceeded when the deadline passes first (the watchdog's shutdown reads as an
  end of body, hence the check after the loop), and http.client.IncompleteRead when the server
  closes before its Content-Length (HTTPResponse.read1 returns b"" there instead of raising).
  """
  parts: list[bytes] = []
  n = 0
  while limit is None or n < limit:
    if deadline.remaining() <= 0:
      raise _DeadlineExceeded()
    chunk = stream.read1(_READ_CHUNK if limit is None else min(_READ_CHUNK, limit - n))
    if not chunk:
      break
    parts.append(chunk)
    n += len(chunk)
  if deadline.fired:
    raise _DeadlineExceeded()
  data = b"".join(parts)
  missing = getattr(stream, "length", None)
  if limit is None and missing:
    raise http.client.IncompleteRead(data, missing)
  return data


class OpenAIBackend:
  """OpenAI-compatible chat-completions client (see module docstring).

  Args:
    cfg: config.openai (base_url, model, api_key_env, concurrency, timeout_s (per socket read),
      request_deadline_s (per attempt, all of it), max_retries, backoff_base_s, backoff_max_s,
      retry_after_max_s, requests_per_second, burst, temperature, top_p, max_tokens).
    cache: replies received are stored here at once; prompts found here are not sent.
  """
  name = "openai"

  def __init__(self, cfg: ml_collections.ConfigDict, cache: cache_lib.ReplyCache):
    if not cfg.model:
      raise ValueError("openai back-end: config.openai.model is empty; name the served model")
    if not cfg.base_url.startswith(("http://", "https://")):
      raise ValueError(f"openai back-end: config.openai.base_url {cfg.base_url!r} is not http(s)")
    if not cfg.request_deadline_s > 0:
      raise ValueError("openai back-end: config.openai.request_deadline_s must be > 0, got "
                       f"{cfg.request_deadline_s!r}")
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
    backoffs: list[float] = []
    while True:
      self._bucket.acquire()
      self._stats.add("requests")
      result = self._send(body)
      attempt += 1
      if result.error is None:
        assert result.text is not None
        self._cache.put(key, prompt.prompt_id, result.text)
        return Completion(prompt.prompt_id, result.text, attempts=attempt,
                          backoffs_s=tuple(backoffs))
      if not result.retryable or attempt > self._cfg.max_retries:
        self._stats.add(f"errors/{result.error}")
        return Completion(prompt.prompt_id, None, result.error, result.detail, attempts=attempt,
                          backoffs_s=tuple(backoffs))
      self._stats.add(f"retries/{result.error}")
      delay = self._backoff_s(attempt - 1, result.retry_after_s)
      backoffs.append(delay)
      self._stats.add("backoff_ms", round(delay * 1000))   # total time spent backing off
      # One line per retry, so an operator (and a test, at --verbosity=0) sees the delays grow.
      logging.info("openai: %s attempt %d failed (%s); retry %d of %d after backoff_s=%.4f",
                   prompt.prompt_id, attempt, result.error, attempt, self._cfg.max_retries, delay)
      time.sleep(delay)

  def _redact(self, text: str) -> str:
    """A server's text without the API key (servers echo credentials in error bodies): the key
    and any bearer token are replaced before the text reaches a rejects file or a log."""
    if self._api_key:
      text = text.replace(self._api_key, "[redacted]")
    return _BEARER.sub("Bearer [redacted]", text)

  def _send(self, body: bytes) -> _Attempt:
    """One request attempt under the total deadline; never raises for a failed request."""
    headers = {"Content-Type": "application/json"}
    if self._api_key:
      headers["Authorization"] = f"Bearer {self._api_key}"
    request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
    deadline = _Deadline(self._cfg.request_deadline_s)
    try:
      status, raw, resp_headers = self._exchange(request, deadline)
    except (_DeadlineExceeded, http.client.HTTPException, OSError) as e:
      # OSError covers urllib.error.URLError, socket timeouts, refused and reset connections.
      return self._failed(e, deadline)
    finally:
      deadline.finish()
    if not 200 <= status < 300:   # urllib raises HTTPError for these; their body is the reason
      detail = self._redact(raw[:_ERROR_BODY_BYTES].decode("utf-8", "replace"))
      retryable = status == 429 or status >= 500
      return _Attempt(None, f"http_{status}", retryable, detail,
                      _retry_after_s(resp_headers.get("Retry-After")) if resp_headers else None)
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

  def _exchange(self, request: urllib.request.Request, deadline: _Deadline
                ) -> tuple[int, bytes, email.message.Message | None]:
    """Sends `request`; returns the status, the body (an error status's first bytes only) and the
    headers. The socket timeout (per read, connect included) is timeout_s, or what is left of the
    deadline if less; the watchdog in `deadline` bounds the whole exchange."""
    opener = urllib.request.build_opener(_WatchedHTTPHandler(deadline),
                                         _WatchedHTTPSHandler(deadline))
    timeout = max(0.001, min(self._cfg.timeout_s, deadline.remaining()))
    try:
      resp = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
      # An error status is a response too: its body (the reason) is read under the same deadline.
      if e.fp is None:
        return e.code, b"", e.headers
      with e:
        return e.code, _read_body(e.fp, deadline, _ERROR_BODY_BYTES), e.headers
    with resp:
      return resp.status, _read_body(resp, deadline, None), resp.headers

  def _failed(self, e: BaseException, deadline: _Deadline) -> _Attempt:
    """The reason of an attempt that got no response: the deadline when its watchdog fired
    (whatever error the shut-down socket then raised), else a timeout or a connection error."""
    if isinstance(e, _DeadlineExceeded) or deadline.fired:
      detail = "" if isinstance(e, _DeadlineExceeded) else f" ({type(e).__name__}: {e})"
      return _Attempt(None, "deadline_exceeded", True,
                      f"no whole reply within request_deadline_s={deadline.seconds}{detail}", None)
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
      if isinstance(e.reason, (TimeoutError, socket.timeout)):
        return _Attempt(None, "timeout", True, str(e), None)
      return _Attempt(None, "connection_error", True, str(e), None)
    if isinstance(e, (TimeoutError, socket.timeout)):
      return _Attempt(None, "timeout", True, str(e), None)
    return _Attempt(None, "connection_error", True, f"{type(e).__name__}: {e}", None)


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
