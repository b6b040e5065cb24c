"""LLM back-ends: openai against a real HTTP server on 127.0.0.1 (stdlib ThreadingHTTPServer),
and local (a tiny random Gemma sampling through viit_jax.decoding).

The server answers each request according to a `(mode=...)` marker in the clip's narrative: well,
slowly (client timeout), 429 then success, 5xx, malformed JSON, an unusable reply, a byte at a time
(the request deadline). Its request log
(payload hash, attempt, status, times) is what the tests check, together with the dataset's
manifest and rejects. The last tests SIGKILL a synthesize subprocess halfway and rerun it, keep
the reply cache on a gs:// bucket (a GCS emulator), and SIGTERM a run on a gs:// workdir.
"""
from __future__ import annotations

import collections
import dataclasses
import http.server
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import typing

import pytest

from configs import synthesize_openai
from viit_jax import paths
from viit_jax import runtime
from viit_jax import synthesize
from viit_jax.synthesis import backends
from viit_jax.synthesis import cache as cache_lib
from viit_jax.synthesis import narratives as narratives_lib
from viit_jax.synthesis import templates

REPO = pathlib.Path(__file__).resolve().parents[1]
REPLIES = {
    "temporal": "Question: What does the shape do right after it stops?\nAnswer: It turns around.",
    "causal": "Question: Why does the shape stop?\nAnswer: Because it reaches the edge.",
    "shortqa": "Question: How many shapes are there?\nAnswer: Two.",
}

LOG_WAIT_S = 30.0  # Longest wait for the fake server's late request-log lines.
DRIP_BODY_BYTES = 100_000  # A dripping reply's announced length: hours at one byte per drip_s.


class FakeLLM:
  """An OpenAI-compatible /v1/chat/completions server with scripted misbehaviour.

  Modes (from "(mode=X)" in the prompt's last user message): ok, slow (never answers within the
  client's timeout), slow_once, r429 (429 with Retry-After first, then ok), e500 (always 500),
  e503_once, malformed (200 with broken JSON), badreply (200, but no "Question:" line), drip (the
  status and headers at once, then a DRIP_BODY_BYTES body one byte every `drip_s` seconds),
  drip_headers (the status line, then header bytes one every `drip_s` seconds). A dripping reply
  never ends: each read is quick, so only the client's total deadline stops it.
  """

  def __init__(self, slow_s: float = 1.5, retry_after_s: float = 0.3, delay_s: float = 0.0,
               api_key: str | None = None, drip_s: float = 0.2):
    self.slow_s, self.retry_after_s, self.delay_s = slow_s, retry_after_s, delay_s
    self.api_key = api_key
    self.drip_s = drip_s
    self.closing = threading.Event()  # Set on close(): dripping handlers stop.
    self.log: list[dict] = []
    self.active = 0
    self.last_start = 0.0
    self.lock = threading.Lock()
    self.attempts: collections.Counter[str] = collections.Counter()
    fake = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):  # quiet
        pass

      def do_POST(self):  # noqa: N802
        fake.handle(self)

    class Server(http.server.ThreadingHTTPServer):
      # The default listen backlog (5) is below the clients' concurrency (8): on a loaded 2-core
      # machine the kernel then drops connects, and a client that times out while connecting sends
      # a request this log never sees.
      request_queue_size = 128

    self.server = Server(("127.0.0.1", 0), Handler)
    self.server.daemon_threads = True
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
    self.thread.start()
    self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

  def close(self):
    self.closing.set()
    self.server.shutdown()
    self.server.server_close()

  def wait_idle(self, quiet_s: float = 0.5, timeout_s: float = 30.0) -> None:
    """Waits until no request is being handled and none has started for `quiet_s` seconds.

    A killed client's last requests can still be accepted and handled a little later under load.
    """
    deadline = time.time() + timeout_s
    while time.time() < deadline:
      with self.lock:
        idle = self.active == 0 and time.time() - self.last_start >= quiet_s
      if idle:
        return
      time.sleep(0.05)
    raise TimeoutError("the fake LLM server did not become idle")

  def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
    with self.lock:
      self.active += 1
      self.last_start = time.time()
    try:
      self._handle(h)
    finally:
      with self.lock:
        self.active -= 1

  def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
    t0 = time.time()
    body = h.rfile.read(int(h.headers["Content-Length"]))
    payload = json.loads(body)
    key = backends.payload_key(payload)
    system = payload["messages"][0]["content"]
    kind = next(k for k, task in templates.TASKS.items() if task in system)
    m = re.search(r"\(mode=(\w+)\)", payload["messages"][-1]["content"])
    mode = m.group(1) if m else "ok"
    with self.lock:
      self.attempts[key] += 1
      n = self.attempts[key]
    if mode in ("drip", "drip_headers"):
      with self.lock:   # Logged at once: the reply never ends.
        self.log.append({"key": key, "mode": mode, "kind": kind, "n": n, "status": 200, "t0": t0,
                         "t1": t0, "sent": False})
      self._drip(h, body=mode == "drip")
      return
    status, headers, out = 200, {}, None
    if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
      # Echoes the credentials it got, as some servers do in their error bodies.
      status, out = 401, json.dumps({"error": "bad key",
                                     "received": h.headers.get("Authorization")}).encode()
    elif mode == "slow" or (mode == "slow_once" and n == 1):
      time.sleep(self.slow_s)
    elif mode == "r429" and n == 1:
      status, headers, out = 429, {"Retry-After": str(self.retry_after_s)}, b'{"error": "slow down"}'
    elif mode == "e500" or (mode == "e503_once" and n == 1):
      status, out = (500 if mode == "e500" else 503), b'{"error": "boom"}'
    elif mode == "malformed":
      out = b'{"choices": [{"message": {"content": "Question'
    if out is None:
      time.sleep(self.delay_s)
      content = "I am sorry, I cannot see videos." if mode == "badreply" else REPLIES[kind]
      out = json.dumps({"id": "x", "object": "chat.completion", "model": payload["model"],
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": content}}]}).encode()
    # Logged before the reply goes out, so a client that has its answer always finds it in the log.
    entry = {"key": key, "mode": mode, "kind": kind, "n": n, "status": status, "t0": t0,
             "t1": time.time(), "sent": True}
    with self.lock:
      self.log.append(entry)
    try:
      h.send_response(status)
      for k, v in headers.items():
        h.send_header(k, v)
      h.send_header("Content-Type", "application/json")
      h.send_header("Content-Length", str(len(out)))
      h.end_headers()
      h.wfile.write(out)
      h.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
      entry["sent"] = False


  def _drip(self, h: http.server.BaseHTTPRequestHandler, body: bool) -> None:
    """Sends a reply that never ends, one byte every `drip_s` seconds: after whole headers
    (`body`), or after the status line, inside a header; until the client hangs up."""
    try:
      if body:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(DRIP_BODY_BYTES))
        h.end_headers()
        byte = b" "   # JSON whitespace
      else:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        byte = b"a"
      h.wfile.flush()
      while not self.closing.is_set():
        h.wfile.write(byte)
        h.wfile.flush()
        self.closing.wait(self.drip_s)
    except (BrokenPipeError, ConnectionResetError):
      pass   # The client gave up (its deadline shut the connection down).


@pytest.fixture
def fake_llm():
  servers = []

  def make(**kw) -> FakeLLM:
    servers.append(FakeLLM(**kw))
    return servers[-1]

  yield make
  for s in servers:
    s.close()


def write_vidln(path: pathlib.Path, clips: dict[str, list[tuple[str, str]]]) -> pathlib.Path:
  """A VidLN JSONL (contract format) with the given {video_id: [(actor_name, description)]}."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("w") as f:
    for vid, actors in clips.items():
      f.write(json.dumps({
          "dataset_id": "test", "video_id": vid, "video_path": f"videos/{vid}.mp4",
          "annotator_id": "ann0",
          "actor_narratives": [{"actor_idx": i, "actor_name": name, "description": desc,
                                "time_alignment": [{"utterance": desc.split()[2],
                                                    "start_time": 0.5, "end_time": 1.0}]}
                               for i, (name, desc) in enumerate(actors)]}) + "\n")
  return path


def _config(narratives: pathlib.Path, server: FakeLLM, extra: str = ""):
  arg = (f"narratives={narratives},check_video_files=false,openai.base_url={server.base_url},"
         "openai.model=fake-llm,openai.timeout_s=0.5,openai.max_retries=2,"
         "openai.backoff_base_s=0.05,openai.backoff_max_s=0.2")
  return synthesize_openai.get_config(arg + ("," + extra if extra else ""))


def _mode_clips(modes: list[str]) -> dict[str, list[tuple[str, str]]]:
  return {f"clip_{i:02d}_{mode}": [
      ("the red circle", f"The red circle moves left, then stops {i} times (mode={mode})."),
      ("the blue square", "The blue square spins.")] for i, mode in enumerate(modes)}


def test_retries_rejects_and_request_log(tmp_path, fake_llm):
  server = fake_llm()
  modes = ["ok", "ok", "slow", "slow_once", "r429", "e500", "e503_once", "malformed", "badreply"]
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", _mode_clips(modes))
  config = _config(nar, server, "openai.concurrency=8,unit_size=16")
  manifest = synthesize.run(config, tmp_path / "out")

  # Dataset: what was answered well (possibly after retries) is in; every failure is a reject.
  assert manifest["counts_per_kind"] == {"causal": 5, "shortqa": 5, "temporal": 5}
  assert manifest["rejects_per_reason"] == {
      "backend_timeout": 3, "backend_http_500": 3, "backend_malformed_response": 3,
      "no_question": 3}
  rejects = [json.loads(x) for x in (tmp_path / "out/v1/rejects.jsonl").read_text().splitlines()]
  by_reason = collections.defaultdict(set)
  for r in rejects:
    by_reason[r["reason"]].add(r["clip_id"])
  assert by_reason["backend_timeout"] == {"clip_02_slow"}
  assert by_reason["backend_http_500"] == {"clip_05_e500"}
  assert by_reason["backend_malformed_response"] == {"clip_07_malformed"}
  assert by_reason["no_question"] == {"clip_08_badreply"}
  bad = [r for r in rejects if r["reason"] == "no_question"]
  assert all(r["reply"] == "I am sorry, I cannot see videos." for r in bad)
  assert all('"choices"' in r["detail"] for r in rejects
             if r["reason"] == "backend_malformed_response")
  records = [json.loads(x) for p in sorted((tmp_path / "out/v1/units").glob("*.jsonl"))
             if not p.name.endswith("rejects.jsonl") for x in p.read_text().splitlines()]
  assert {r["prompt_id"] for r in records} | {r["prompt_id"] for r in rejects} == {
      f"{c}/{k}" for c in _mode_clips(modes) for k in templates.KINDS}
  assert len(records) + len(rejects) == 27

  # Server log: attempts per prompt by mode (max_retries=2 -> at most 3 requests). A slow
  # request is logged when its sleep ends, after the client gave up: wait for those lines (up to
  # 30 s: on a loaded 2-core CI machine the server's sleeping threads can end seconds late).
  deadline = time.time() + LOG_WAIT_S
  while time.time() < deadline and sum(e["mode"] in ("slow", "slow_once") for e in server.log) < 15:
    time.sleep(0.05)
  per_key = collections.defaultdict(list)
  for e in server.log:
    per_key[e["key"]].append(e)
  attempts_by_mode = collections.defaultdict(set)
  for entries in per_key.values():
    attempts_by_mode[entries[0]["mode"]].add(len(entries))
  assert dict(attempts_by_mode) == {
      "ok": {1}, "slow": {3}, "slow_once": {2}, "r429": {2}, "e500": {3}, "e503_once": {2},
      "malformed": {1},   # broken JSON is not retried
      "badreply": {1}}
  for entries in per_key.values():
    if entries[0]["mode"] == "r429":   # Retry-After honoured (backoff alone would be <= 0.2 s)
      entries.sort(key=lambda e: e["n"])
      assert entries[1]["t0"] - entries[0]["t1"] >= server.retry_after_s - 0.02

  # Rerun: the unit had back-end errors, so it is redone; replies received are read from the
  # cache, so no prompt whose reply arrived is sent again; only the failed ones are.
  cache_file = tmp_path / "out/cache/replies.jsonl"
  cached = {json.loads(x)["key"] for x in cache_file.read_text().splitlines()}
  assert {per_key[k][0]["mode"] for k in cached} == {"ok", "slow_once", "r429", "e503_once",
                                                     "badreply"}
  assert len(cached) == 18
  n_before = len(server.log)
  manifest2 = synthesize.run(config, tmp_path / "out")
  deadline = time.time() + LOG_WAIT_S
  while time.time() < deadline and len(server.log) < n_before + 9 + 9 + 3:
    time.sleep(0.05)
  second = server.log[n_before:]
  assert not {e["key"] for e in second} & cached
  assert collections.Counter(e["mode"] for e in second) == {"slow": 9, "e500": 9, "malformed": 3}
  assert manifest2["counts_per_kind"] == manifest["counts_per_kind"]
  assert manifest2["rejects_per_reason"] == manifest["rejects_per_reason"]
  run_files = sorted((tmp_path / "out/v1/runs").glob("*.json"))
  stats = json.loads(run_files[-1].read_text())["backend_stats"]
  assert stats["cache_hits"] == 18   # 15 accepted + 3 badreply (answered, rejected by validation)
  assert stats["retries/http_500"] == 6 and stats["errors/http_500"] == 3


def test_rate_limit_and_api_key(tmp_path, fake_llm, monkeypatch):
  server = fake_llm(api_key="sekret")
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", _mode_clips(["ok"] * 4))
  extra = ("openai.api_key_env=VIIT_TEST_KEY,openai.requests_per_second=10,openai.burst=1,"
           "openai.concurrency=8,kinds=('temporal','causal')")
  monkeypatch.delenv("VIIT_TEST_KEY", raising=False)
  with pytest.raises(ValueError, match="VIIT_TEST_KEY"):
    synthesize.run(_config(nar, server, extra), tmp_path / "out")
  monkeypatch.setenv("VIIT_TEST_KEY", "sekret")
  manifest = synthesize.run(_config(nar, server, extra), tmp_path / "out")
  assert manifest["num_examples"] == 8 and manifest["rejects_per_reason"] == {}
  assert all(e["status"] == 200 for e in server.log) and len(server.log) == 8
  starts = sorted(e["t0"] for e in server.log)
  assert starts[-1] - starts[0] >= 7 * 0.1 - 0.05   # 10 requests/s, burst 1: >= 0.1 s apart
  # A wrong key is a non-retried 401, counted as a reject (fresh workdir: the key is not part
  # of the cache key, so the first workdir would answer everything from its cache).
  wrong = "sk-wrong-4f9c2e7b1d"
  monkeypatch.setenv("VIIT_TEST_KEY", wrong)
  n = len(server.log)
  # A wrong key fails every prompt: by default that stops the job (the circuit breaker, tested
  # below); here the rejects themselves are under test, so no rate of errors stops it.
  manifest = synthesize.run(_config(nar, server, extra + ",max_backend_error_rate=1.0"),
                            tmp_path / "out2")
  assert manifest["rejects_per_reason"] == {"backend_http_401": 8}
  assert len(server.log) - n == 8
  # The server echoed the key in its 401 bodies: it reaches no file of either run directory.
  files = [f for d in ("out", "out2") for f in (tmp_path / d).rglob("*") if f.is_file()]
  assert files and not [f for f in files if wrong.encode() in f.read_bytes()
                        or b"sekret" in f.read_bytes()]
  rejects = (tmp_path / "out2" / "v1" / "rejects.jsonl").read_text()
  assert "Bearer [redacted]" in rejects


def test_identical_requests_in_a_batch_are_sent_once(tmp_path, fake_llm):
  server = fake_llm()
  config = _config(tmp_path / "unused.jsonl", server)
  backend = backends.make(config, str(tmp_path / "cache.jsonl"))
  nar = narratives_lib.Narrative("v0", "v0", "videos/v0.mp4", "a", (
      narratives_lib.ActorNarrative(0, "the red circle", "The red circle moves left."),))
  p = templates.build_prompt(nar, "causal", seed=0)
  twin = dataclasses.replace(p, prompt_id="v1/causal", clip_id="v1")
  out = backend.complete([p, twin])
  assert [c.prompt_id for c in out] == ["v0/causal", "v1/causal"]
  assert out[0].text == out[1].text == REPLIES["causal"]
  assert len(server.log) == 1 and backend.stats()["deduplicated"] == 1


def test_cache_survives_torn_line(tmp_path):
  path = tmp_path / "replies.jsonl"
  path.write_text(json.dumps({"key": "a", "prompt_id": "c/temporal", "text": "A"}) + "\n"
                  + '{"key": "b", "prompt_id": "c/ca')   # killed mid-write
  cache = cache_lib.ReplyCache(path)
  assert cache.torn_lines == 1 and cache.get("a") == "A" and cache.get("b") is None
  cache.put("b", "c/causal", "B")
  cache.close()
  again = cache_lib.ReplyCache(path)
  assert again.get("a") == "A" and again.get("b") == "B" and again.torn_lines == 1
  again.close()


def test_gemma_turn_format():
  nar = narratives_lib.Narrative("v0", "v0", "videos/v0.mp4", "a", (
      narratives_lib.ActorNarrative(0, "the red circle", "The red circle moves left."),))
  prompt = templates.build_prompt(nar, "shortqa", seed=0)
  text = backends.render_gemma_prompt(prompt)
  assert text.startswith("<start_of_turn>user\n" + templates.system_message("shortqa"))
  assert text.endswith("the red circle: The red circle moves left.<end_of_turn>\n"
                       "<start_of_turn>model\n")
  assert text.count("<start_of_turn>model\n") == 3   # two few-shot answers + the open turn
  assert backends.parse_gemma_reply("Question: Q?\nAnswer: A.<end_of_turn>\n<start_of_turn>user"
                                    ) == "Question: Q?\nAnswer: A."


def test_local_gemma_backend_end_to_end(tmp_path):
  """A tiny random Gemma (the `test` variant's LM) samples replies through viit_jax.decoding:
  every prompt is answered or rejected with its reason, replies are cached, a rerun decodes
  nothing, and a prompt over max_prompt_len is a counted reject."""
  import jax
  import numpy as np
  import sentencepiece as spm
  from flax import linen as nn
  from flax import traverse_util
  from viit_jax.models import variants

  # A 256-piece tokenizer (contract ids) with Gemma's turn markers as single pieces.
  lines = [m["content"] for k in templates.KINDS for m in templates.build_prompt(
      narratives_lib.Narrative("v", "v", "x", "a", (narratives_lib.ActorNarrative(
          0, "the red circle", "The red circle moves left, then grows."),)), k, 0).messages]
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines * 5), model_prefix=str(tmp_path / "sp"), vocab_size=256,
      model_type="unigram", pad_id=0, eos_id=1, bos_id=2, unk_id=3, hard_vocab_limit=False,
      user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], minloglevel=2)
  # Random LM parameters saved as a VLM-style .npz (names under llm/).
  llm_cfg = variants.get_config("test").llm
  params = nn.unbox(variants.init_fn(llm_cfg)(jax.random.PRNGKey(0))["params"])
  flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
  np.savez(tmp_path / "lm.npz", **{f"llm/{k}": np.asarray(v) for k, v in flat.items()})

  clips = {f"v{i}": [("the red circle", f"The red circle moves left, then grows {i} times.")]
           for i in range(3)}
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", clips)
  arg = (f"narratives={nar},check_video_files=false,backend=local,local.variant=test,"
         f"local.checkpoint={tmp_path / 'lm.npz'},local.vocab={tmp_path / 'sp.model'},"
         "local.max_decode_len=12,local.max_prompt_len=768,local.batch_size=8,"
         "max_backend_error_rate=1.0")  # Whole units of prompt_too_long are this test's subject.
  manifest = synthesize.run(synthesize_openai.get_config(arg), tmp_path / "out")
  assert manifest["backend"] == "local" and manifest["model_name"].startswith("gemma:test:")
  rejects = [json.loads(x) for x in (tmp_path / "out/v1/rejects.jsonl").read_text().splitlines()]
  # Untrained weights write noise: whatever the verdicts, all 9 prompts are accounted for.
  assert manifest["num_examples"] + len(rejects) == 9
  assert sum(manifest["rejects_per_reason"].values()) == len(rejects)
  assert all(isinstance(r["reply"], str) for r in rejects)
  assert not any(r["reason"].startswith("backend_") for r in rejects)
  cached = (tmp_path / "out/cache/replies.jsonl").read_text().splitlines()
  assert len(cached) == 9
  run1 = json.loads(sorted((tmp_path / "out/v1/runs").glob("*.json"))[-1].read_text())
  assert run1["backend_stats"] == {"batches": 2, "requests": 9}

  (tmp_path / "out/v1/units/unit-00000.meta.json").unlink()   # force the unit to be redone
  again = synthesize.run(synthesize_openai.get_config(arg), tmp_path / "out")
  run2 = json.loads(sorted((tmp_path / "out/v1/runs").glob("*.json"))[-1].read_text())
  assert run2["backend_stats"] == {"cache_hits": 9}
  assert again["rejects_per_reason"] == manifest["rejects_per_reason"]

  short = synthesize.run(synthesize_openai.get_config(
      arg.replace("local.max_prompt_len=768", "local.max_prompt_len=64")), tmp_path / "out2")
  assert short["rejects_per_reason"] == {"backend_prompt_too_long": 9}


class _Job(typing.NamedTuple):
  server: "FakeLLM"
  arg: str  # The config argument (configs/synthesize_openai.py).
  cmd: list[str]
  env: dict[str, str]
  clip_ids: list[str]


def _sixteen_clip_job(tmp_path, fake_llm, workdir) -> _Job:
  """16 clips in 8 units of 6 prompts, the server answering 50 ms after each request, 4 requests
  in flight: a synthesis job slow enough to interrupt mid-unit."""
  clips = {f"v{i:02d}": [("the red circle", f"The red circle moves left, then stops {i} times."),
                         ("the blue square", "The blue square spins.")] for i in range(16)}
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", clips)
  server = fake_llm(delay_s=0.05)
  arg = (f"narratives={nar},check_video_files=false,openai.base_url={server.base_url},"
         "openai.model=fake-llm,openai.concurrency=4,unit_size=2")
  cmd = [sys.executable, "-m", "viit_jax.synthesize",
         f"--config=configs/synthesize_openai.py:{arg}", f"--workdir={workdir}"]
  return _Job(server, arg, cmd, dict(os.environ, PYTHONPATH=str(REPO)), list(clips))


def test_sigkill_halfway_then_resume(tmp_path, fake_llm):
  """SIGKILL the job mid-unit; the rerun completes it, sending no answered prompt again."""
  workdir = tmp_path / "out"
  server, arg, cmd, env, clips = _sixteen_clip_job(tmp_path, fake_llm, workdir)
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
  # Kill once 14 replies are cached: units 0-1 (12 prompts) are done, unit 2 is half way (its
  # replies arrive in waves of 4, 50 ms apart, so the 18 it needs cannot land within one poll).
  cache_file = workdir / "cache/replies.jsonl"
  deadline = time.time() + 90
  while time.time() < deadline and proc.poll() is None:
    if cache_file.exists() and cache_file.read_bytes().count(b"\n") >= 14:
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.005)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL, out.decode()[-3000:]
  assert not (workdir / "v1/manifest.json").exists()
  finished_units = len(list((workdir / "v1/units").glob("*.meta.json")))
  assert finished_units == 2
  cached = {json.loads(line)["key"] for line in cache_file.read_text().splitlines()
            if line.endswith("}")}
  assert 14 <= len(cached) < 18   # the finished units' 12 replies + part of unit 2's
  server.wait_idle()   # requests in flight at the kill finish before the rerun starts
  rerun_start = time.time()

  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=120)
  assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
  manifest = json.loads((workdir / "v1/manifest.json").read_text())
  assert manifest["counts_per_kind"] == {"causal": 16, "shortqa": 16, "temporal": 16}
  assert manifest["rejects_per_reason"] == {}

  # The output is complete and holds each prompt exactly once.
  ids = [json.loads(line)["prompt_id"] for p in sorted((workdir / "v1/units").glob("*.jsonl"))
         if not p.name.endswith("rejects.jsonl") for line in p.read_text().splitlines()]
  assert sorted(ids) == sorted(f"{c}/{k}" for c in clips for k in templates.KINDS)
  # No prompt whose reply reached the cache was sent again; every prompt was answered once in all
  # except those in flight at the kill.
  second = [e for e in server.log if e["t0"] >= rerun_start]
  assert not {e["key"] for e in second} & cached
  assert len({e["key"] for e in server.log}) == 48
  assert len(second) == 48 - len(cached)
  run = json.loads(sorted((workdir / "v1/runs").glob("*.json"))[-1].read_text())
  assert run["units_skipped"] == finished_units
  assert run["backend_stats"]["cache_hits"] == len(cached) - 12 >= 2   # the partial unit's
  assert run["backend_stats"]["requests"] == 48 - len(cached)


def test_reply_cache_on_gcs(gcs_bucket, tmp_path):
  """A remote cache publishes this run's replies as one whole JSONL object per run on sync();
  a new cache on the path (or a local copy of its directory) reads every segment back."""
  path = f"{gcs_bucket}/{tmp_path.name}/cache/replies.jsonl"
  cache = cache_lib.ReplyCache(path)
  assert len(cache) == 0
  n = 25
  for i in range(n):
    cache.put(f"k{i}", f"c{i}/temporal", f"reply {i} \u00e9")
  unsynced = cache_lib.ReplyCache(path)
  assert len(unsynced) == 0   # Nothing published before sync().
  unsynced.close()
  cache.sync()
  directory = paths.path(path).parent
  segments = list(directory.glob("replies-*.jsonl"))
  assert len(segments) == 1 and not paths.path(path).exists()
  data = segments[0].read_bytes()
  assert data.endswith(b"\n")
  assert [json.loads(line)["key"] for line in data.splitlines()] == [f"k{i}" for i in range(n)]
  again = cache_lib.ReplyCache(path)
  assert len(again) == n and again.get("k3") == "reply 3 \u00e9" and again.torn_lines == 0
  again.close()

  cache.put("k0", "c0/temporal", "other")   # Known: ignored.
  cache.put("late", "c9/causal", "late reply")
  cache.close()   # Syncs: the run's one segment, rewritten whole.
  assert list(directory.glob("replies-*.jsonl")) == segments
  assert len(segments[0].read_bytes().splitlines()) == n + 1
  final = cache_lib.ReplyCache(path)
  assert len(final) == n + 1 and final.get("late") == "late reply"
  assert final.get("k0") == "reply 0 \u00e9"
  final.put("k_final", "c1/shortqa", "F")
  final.close()
  assert len(list(directory.glob("replies-*.jsonl"))) == 2   # One segment per run.

  # The segments and a plain local cache file in one local directory: all entries are read.
  local_dir = tmp_path / "copy"
  local_dir.mkdir()
  for seg in directory.glob("replies-*.jsonl"):
    (local_dir / seg.name).write_bytes(seg.read_bytes())
  (local_dir / "replies.jsonl").write_text(
      json.dumps({"key": "own", "prompt_id": "c/temporal", "text": "O"}) + "\n")
  local = cache_lib.ReplyCache(local_dir / "replies.jsonl")
  assert len(local) == n + 3 and local.get("own") == "O" and local.get("k_final") == "F"
  local.close()
  assert not (REPO / "gs:").exists()


def _forget_gcs_listings() -> None:
  """Drops this process's cached gs:// listings: gcsfs (under etils.epath, with the arguments
  epath gives it) answers from a directory listed once, so files that another process wrote there
  since would look missing."""
  import fsspec  # pylint: disable=g-import-not-at-top
  fsspec.filesystem("gs", finalize_on_close=True).invalidate_cache()


def _examples(version_dir: paths.PathLike) -> tuple[list[dict], list[bytes]]:
  """The rows and TFRecord bytes of a dataset version's units, in unit order."""
  units = paths.path(version_dir) / "units"
  rows = [r for p in sorted(units.glob("unit-*.jsonl"), key=os.fspath)
          if not p.name.endswith(".rejects.jsonl") for r in paths.read_jsonl(p)]
  return rows, [p.read_bytes() for p in sorted(units.glob("unit-*.tfrecord"), key=os.fspath)]


def _rerun_to_the_end(cmd: list[str], env: dict[str, str]) -> float:
  """Reruns an interrupted synthesis CLI to completion; returns when the rerun started."""
  start = time.time()
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=180)
  assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-3000:]
  _forget_gcs_listings()
  return start


def test_sigterm_finishes_the_unit_exits_42_and_resumes_on_gcs(tmp_path, fake_llm, gcs_bucket):
  """SIGTERM mid-unit on a gs:// workdir: the unit in progress is finished and written, then the
  job exits 42 without a manifest; the rerun completes with an uninterrupted run's examples and
  sends no prompt of the finished units again."""
  workdir = f"{gcs_bucket}/{tmp_path.name}/out"
  version = paths.path(workdir) / "v1"
  server, arg, cmd, env, clips = _sixteen_clip_job(tmp_path, fake_llm, workdir)
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
  # SIGTERM once unit 1 is under way: unit 0's 6 prompts and 3 of unit 1's have reached the server
  # (unit 1 needs 3 more, in waves of 4 at least 50 ms apart, then 5 uploads to be written).
  deadline = time.time() + 90
  while time.time() < deadline and proc.poll() is None:
    if len(server.log) >= 9:
      proc.send_signal(signal.SIGTERM)
      break
    time.sleep(0.005)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == runtime.EXIT_PREEMPTED == 42, out.decode()[-3000:]
  assert not (version / "manifest.json").exists()
  metas = sorted(p.name for p in (version / "units").glob("*.meta.json"))
  finished = len(metas)
  assert 2 <= finished < 8 and metas == [f"unit-{i:05d}.meta.json" for i in range(finished)]
  # Only whole units: each has all its files, and no prompt of a later unit was sent.
  names = {p.name for p in (version / "units").glob("*")}
  assert names == {f"unit-{i:05d}.{s}" for i in range(finished)
                   for s in ("tfrecord", "jsonl", "rejects.jsonl", "meta.json")}
  server.wait_idle()
  first_keys = {e["key"] for e in server.log}
  assert len(first_keys) == len(server.log) == 6 * finished
  (run1,) = [paths.read_json(p) for p in (version / "runs").glob("*.json")]
  assert run1["preempted"] and run1["units_written"] == finished
  (segment,) = (paths.path(workdir) / "cache").glob("replies-*.jsonl")
  assert {json.loads(x)["key"] for x in segment.read_text().splitlines()} == first_keys
  rerun_start = _rerun_to_the_end(cmd, env)
  manifest = paths.read_json(version / "manifest.json")
  assert manifest["counts_per_kind"] == {"causal": 16, "shortqa": 16, "temporal": 16}
  second = [e for e in server.log if e["t0"] >= rerun_start]
  assert not {e["key"] for e in second} & first_keys and len(second) == 48 - 6 * finished
  run2 = [r for r in map(paths.read_json, (version / "runs").glob("*.json")) if r != run1]
  assert len(run2) == 1 and run2[0]["units_skipped"] == finished and not run2[0]["preempted"]

  whole = synthesize.run(synthesize_openai.get_config(arg), tmp_path / "whole")
  assert whole["counts_per_kind"] == manifest["counts_per_kind"]
  assert _examples(version) == _examples(tmp_path / "whole" / "v1")
  assert not (REPO / "gs:").exists()


def test_sigkill_on_gcs_loses_only_the_unit_in_progress(tmp_path, fake_llm, gcs_bucket):
  """With a gs:// reply cache, the replies of every finished unit are in the bucket (synced after
  each unit), so a SIGKILL loses only the unit in progress, whose prompts the rerun asks again."""
  clips = {f"v{i:02d}": [("the red circle", f"The red circle moves left, then stops {i} times."),
                         ("the blue square", "The blue square spins.")] for i in range(8)}
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", clips)
  server = fake_llm(delay_s=0.05)
  workdir = f"{gcs_bucket}/{tmp_path.name}/out"
  arg = (f"narratives={nar},check_video_files=false,openai.base_url={server.base_url},"
         "openai.model=fake-llm,openai.concurrency=4,unit_size=2")   # 4 units of 6 prompts
  cmd = [sys.executable, "-m", "viit_jax.synthesize",
         f"--config=configs/synthesize_openai.py:{arg}", f"--workdir={workdir}"]
  env = dict(os.environ, PYTHONPATH=str(REPO))
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
  deadline = time.time() + 90   # Kill when unit 1's first wave of requests arrives (as above).
  while time.time() < deadline and proc.poll() is None:
    if len(server.log) >= 9:
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.005)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGKILL, out.decode()[-3000:]
  server.wait_idle()
  unit0 = {e["key"] for e in sorted(server.log, key=lambda e: e["t0"])[:6]}
  (segment,) = (paths.path(workdir) / "cache").glob("replies-*.jsonl")
  assert {json.loads(x)["key"] for x in segment.read_text().splitlines()} == unit0
  rerun_start = _rerun_to_the_end(cmd, env)
  assert paths.read_json(f"{workdir}/v1/manifest.json")["num_examples"] == 24
  second = [e for e in server.log if e["t0"] >= rerun_start]
  assert not {e["key"] for e in second} & unit0 and len(second) == 24 - 6


def _synthesize_cli(arg: str, out: pathlib.Path, *, timeout: float
                    ) -> subprocess.CompletedProcess:
  """`python -m viit_jax.synthesize` with configs/synthesize_openai.py:<arg>, INFO logging on
  (the retry lines)."""
  return subprocess.run([sys.executable, "-m", "viit_jax.synthesize",
                         f"--config=configs/synthesize_openai.py:{arg}", f"--workdir={out}",
                         "--verbosity=0"],
                        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                        text=True, timeout=timeout)


def test_a_server_that_is_down_stops_synthesis_without_a_manifest(tmp_path):
  """The base URL names a closed port: every prompt fails with a connection error after its
  retries (logged, with back-off delays that grow), the first unit trips the circuit breaker, and
  the CLI exits with EXIT_BACKEND_FAILED, naming the reason, with no unit and no manifest
  written."""
  from launch import local  # pylint: disable=import-outside-toplevel
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", _mode_clips(["ok"] * 4))
  arg = (f"narratives={nar},check_video_files=false,"
         f"openai.base_url=http://127.0.0.1:{local.free_port()}/v1,openai.model=fake-llm,"
         "openai.timeout_s=0.5,openai.max_retries=3,openai.backoff_base_s=0.01,"
         "openai.backoff_max_s=1.0,unit_size=2")
  out = tmp_path / "out"
  run = _synthesize_cli(arg, out, timeout=120)
  assert run.returncode == runtime.EXIT_BACKEND_FAILED, run.stderr[-3000:]
  assert "backend_connection_error" in run.stderr and "max_backend_error_rate" in run.stderr
  assert not (out / "v1" / "manifest.json").exists()
  assert not list((out / "v1" / "units").glob("*.meta.json"))
  log = _retry_log(run.stderr)   # the 6 prompts of unit 0, 3 retries each
  assert len(log) == 6, run.stderr[-3000:]
  for retried in log.values():
    assert {reason for reason, _ in retried} == {"connection_error"}
    _check_backoffs([d for _, d in retried], 0.01, 1.0, 3)


_RETRY_LOG = re.compile(r"openai: (\S+) attempt (\d+) failed \((\w+)\); retry (\d+) of (\d+) "
                        r"after backoff_s=([0-9.]+)")


def _retry_log(stderr: str) -> dict[str, list[tuple[str, float]]]:
  """{prompt_id: [(reason, backoff seconds) per retry, in order]} from the back-end's log lines."""
  out: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)
  for m in _RETRY_LOG.finditer(stderr):
    prompt_id, attempt, reason, retry, _, delay = m.groups()
    assert int(attempt) == int(retry) == len(out[prompt_id]) + 1, m.group(0)
    out[prompt_id].append((reason, float(delay)))
  return dict(out)


def _check_backoffs(delays: typing.Sequence[float], base: float, cap: float, n: int,
                    tol: float = 1e-4) -> None:
  """The `n` sleeps before retries 1..n grow as configured.

  Retry k+1 (k from 0) sleeps a delay jittered in [c_k/2, c_k], c_k = min(cap, base * 2^k), so
  a single step may shrink, but two steps apart, while uncapped, the delay grows strictly:
  d_{k+2} >= c_{k+2}/2 = 2 c_k > c_k >= d_k. `tol` covers delays read from %.4f log lines.
  """
  assert len(delays) == n, delays
  for k, d in enumerate(delays):
    c = min(cap, base * 2 ** k)
    assert c / 2 - tol <= d <= c + tol, (k, d, c, delays)
  pairs = [k for k in range(n - 2) if base * 2 ** (k + 2) <= cap]
  assert pairs, "settings leave no uncapped pair of retries two apart to compare"
  for k in pairs:
    assert delays[k + 2] > delays[k] + base * 2 ** k / 2, (k, delays)


def _mode_prompts(modes: list[str]) -> list[templates.Prompt]:
  """One temporal prompt per mode, its narrative carrying the fake server's mode marker."""
  return [templates.build_prompt(narratives_lib.Narrative(
      f"v{i}", f"v{i}", f"videos/v{i}.mp4", "a", (narratives_lib.ActorNarrative(
          0, "the red circle", f"The red circle moves left {i} times (mode={mode})."),)),
      "temporal", seed=0) for i, mode in enumerate(modes)]


def test_request_deadline_ends_a_dripping_reply_and_backoffs_grow(tmp_path, fake_llm):
  """A reply dripped a byte every 0.2 s (in the body, or in the headers) never trips the 1 s
  per-read timeout; the 0.6 s deadline per attempt ends each attempt, the prompt fails as
  deadline_exceeded after its retries, counted in the stats, with back-off delays that grow."""
  server = fake_llm(drip_s=0.2)
  deadline_s, retries, base, cap = 0.6, 3, 0.05, 10.0
  cfg = synthesize_openai.get_config(
      f"openai.base_url={server.base_url},openai.model=fake-llm,openai.timeout_s=1.0,"
      f"openai.request_deadline_s={deadline_s},openai.max_retries={retries},"
      f"openai.backoff_base_s={base},openai.backoff_max_s={cap},openai.concurrency=2").openai
  backend = backends.OpenAIBackend(cfg, cache_lib.ReplyCache(tmp_path / "cache.jsonl"))
  prompts = _mode_prompts(["drip", "drip_headers"])
  t0 = time.monotonic()
  done = backend.complete(prompts)
  elapsed = time.monotonic() - t0
  backend.close()

  assert [c.prompt_id for c in done] == [p.prompt_id for p in prompts]
  for c in done:
    assert c.error == "deadline_exceeded" and c.text is None, c
    assert c.attempts == retries + 1 and f"request_deadline_s={deadline_s}" in c.detail
    _check_backoffs(c.backoffs_s, base, cap, retries)
  # Each attempt lasts at least the deadline (the server never finishes) and at most the deadline
  # plus scheduling slack: nowhere near the DRIP_BODY_BYTES * 0.2 s a whole reply would take.
  longest = max(sum(c.backoffs_s) for c in done)
  assert (retries + 1) * deadline_s + longest <= elapsed < (retries + 1) * deadline_s + longest + 10
  stats = backend.stats()
  assert stats["requests"] == 8 and stats["errors/deadline_exceeded"] == 2
  assert stats["retries/deadline_exceeded"] == 6 and "errors/timeout" not in stats
  assert stats["backoff_ms"] == sum(round(d * 1000) for c in done for d in c.backoffs_s)
  # The server saw every attempt of both prompts; nothing reached the reply cache.
  deadline = time.time() + LOG_WAIT_S
  while time.time() < deadline and len(server.log) < 8:
    time.sleep(0.05)
  assert collections.Counter(e["mode"] for e in server.log) == {"drip": 4, "drip_headers": 4}
  assert not (tmp_path / "cache.jsonl").exists() or not (tmp_path / "cache.jsonl").read_text()


def test_backoffs_grow_against_a_closed_port(tmp_path):
  """Connection refused at once, so the run is all back-off: the delays before retries 1..5 lie
  in [c/2, c] for c = base * 2^k, grow two retries apart, and are capped at backoff_max_s."""
  from launch import local  # pylint: disable=import-outside-toplevel
  url = f"http://127.0.0.1:{local.free_port()}/v1"
  for cap, name in ((10.0, "uncapped"), (0.04, "capped")):
    cfg = synthesize_openai.get_config(
        f"openai.base_url={url},openai.model=fake-llm,openai.max_retries=5,"
        f"openai.backoff_base_s=0.01,openai.backoff_max_s={cap}").openai
    backend = backends.OpenAIBackend(cfg, cache_lib.ReplyCache(tmp_path / name / "cache.jsonl"))
    t0 = time.monotonic()
    (c,) = backend.complete(_mode_prompts(["ok"]))
    elapsed = time.monotonic() - t0
    backend.close()
    assert c.error == "connection_error" and c.attempts == 6, c
    assert elapsed >= sum(c.backoffs_s)   # the recorded delays were slept
    stats = backend.stats()
    assert stats["retries/connection_error"] == 5 and stats["errors/connection_error"] == 1
    assert stats["backoff_ms"] == sum(round(d * 1000) for d in c.backoffs_s)
    if name == "uncapped":
      _check_backoffs(c.backoffs_s, 0.01, cap, 5)
    else:   # retries 3..5 (k >= 2) sit at the cap: jittered in [cap/2, cap], never above
      assert len(c.backoffs_s) == 5
      assert 0.005 <= c.backoffs_s[0] <= 0.01 and 0.01 <= c.backoffs_s[1] <= 0.02
      assert all(cap / 2 <= d <= cap for d in c.backoffs_s[2:]), c.backoffs_s


def test_a_dripping_server_stops_synthesis_within_its_deadlines(tmp_path, fake_llm):
  """A server that sends its headers, then a byte every 0.2 s: each attempt ends at the request
  deadline, every prompt fails as deadline_exceeded after its retries (logged with back-off
  delays that grow), the first unit trips the circuit breaker, and the CLI exits with
  EXIT_BACKEND_FAILED in bounded time, with no unit and no manifest written."""
  server = fake_llm(drip_s=0.2)
  nar = write_vidln(tmp_path / "vidln" / "train.jsonl", _mode_clips(["drip"] * 4))
  deadline_s, retries, base, cap = 0.5, 3, 0.05, 1.0
  arg = (f"narratives={nar},check_video_files=false,openai.base_url={server.base_url},"
         f"openai.model=fake-llm,openai.timeout_s=1.0,openai.request_deadline_s={deadline_s},"
         f"openai.max_retries={retries},openai.backoff_base_s={base},openai.backoff_max_s={cap},"
         "unit_size=2")
  out = tmp_path / "out"
  run = _synthesize_cli(arg, out, timeout=180)
  ended = time.time()
  assert run.returncode == runtime.EXIT_BACKEND_FAILED, run.stderr[-3000:]
  wait = time.time() + LOG_WAIT_S   # a starved server thread may log an attempt late
  while time.time() < wait and len(server.log) < 6 * (retries + 1):
    time.sleep(0.05)
  assert "backend_deadline_exceeded" in run.stderr and "max_backend_error_rate" in run.stderr
  assert not (out / "v1" / "manifest.json").exists()
  assert not list((out / "v1" / "units").glob("*"))

  # Bounded: from the first request on, a prompt takes (retries + 1) deadlines plus its back-offs
  # (all 6 prompts of unit 0 in parallel); 10 s covers thread scheduling and the process's exit.
  # A whole dripped reply would take DRIP_BODY_BYTES * 0.2 s.
  bound = (retries + 1) * deadline_s + sum(min(cap, base * 2 ** k) for k in range(retries))
  first = min(e["t0"] for e in server.log)
  assert ended - first < bound + 10, (ended - first, bound)

  # Every prompt of unit 0 (2 clips x 3 kinds) retried 3 times, each after a longer back-off.
  log = _retry_log(run.stderr)
  assert sorted(log) == sorted(f"{c}/{k}" for c in list(_mode_clips(["drip"] * 4))[:2]
                               for k in templates.KINDS), run.stderr[-3000:]
  for retried in log.values():
    assert {reason for reason, _ in retried} == {"deadline_exceeded"}
    _check_backoffs([d for _, d in retried], base, cap, retries)
  assert collections.Counter(e["mode"] for e in server.log) == {"drip": 6 * (retries + 1)}
