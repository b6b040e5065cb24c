"""The search page and its index: viit_jax.search, viit_jax.serve in headless Chromium.

The corpus is an auto-labeling version of the test world's pool (viit_jax.autolabel's writers) whose
captions are the world's ground-truth paraphrases; a `test-de` dual encoder is trained on it here
(`loop.train`, real orbax checkpoints). The browser is Debian's Chromium driven by Selenium through
Debian's chromedriver (`make test` installs both with apt-get; nothing is downloaded).
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from configs import dual_encoder_demo
from data import rejects as rj
from viit_jax import caption_sets
from viit_jax import loop
from viit_jax import search
from viit_jax import train_dual_encoder as tde
from viit_jax.demo import caption_ceiling

REPO = pathlib.Path(__file__).resolve().parents[1]
K = 3
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _write_corpus(world: pathlib.Path, out: pathlib.Path) -> dict[str, list[str]]:
  """A finished auto-labeling version: each pool clip with K ground-truth paraphrases."""
  records = caption_ceiling.pool_records(world)
  ids = list(records)
  truth = caption_ceiling.paraphrase_sets(records, ids, K, seed=0, stream=0)
  import csv  # pylint: disable=g-import-not-at-top
  with open(world / "webvid" / "results_pool.csv") as f:
    pool = {r["videoid"]: r for r in csv.DictReader(f)}
  rows = [{"index": i, "clip_id": cid, "path": pool[cid]["contentUrl"], "segment": None,
           "alt_text": pool[cid]["name"], "captions": truth[cid], "mean_logprobs": [-1.0] * K,
           "num_tokens": [5] * K} for i, cid in enumerate(ids)]
  units = caption_sets.Units(out)
  half = len(rows) // 2  # Two units, so the index has two shards.
  units.write(0, rows[:half], [], {"unit": 0, "clips": half})
  units.write(1, rows[half:], [], {"unit": 1, "clips": len(rows) - half})
  settings = {"version": out.name, "mode": "viit",
              "corpus": {"format": "demo", "video_root": str(world / "webvid"),
                         "num_clips": len(rows), "num_units": 2}}
  assert caption_sets.finalize(units, 2, settings, rj.Rejects("pool")) is not None
  return truth


@pytest.fixture(scope="module")
def run(demo_world, tmp_path_factory):
  """{corpus, de, truth}: the corpus version and a dual encoder trained on it."""
  root = tmp_path_factory.mktemp("search_run")
  corpus = root / "label_truth" / "v1"
  truth = _write_corpus(demo_world, corpus)
  args = {"data.world_dir": demo_world, "model.variant": "test-de", "model.dtype": "float32",
          "model.scan": "false", "data.res": 16, "data.num_frames": 2, "data.text_len": 16,
          "train.batch_size": 8, "train.log_every": 50, "train.checkpoint_every": 100,
          "train.eval_every": 0, "train.total_steps": 150, "optim.warmup_steps": 10,
          "optim.lr": 3e-3, "init_from": "''", "init_required": "false",
          "caption_source": "viit", "dual_encoder.viit_captions_dir": corpus}
  config = dual_encoder_demo.get_config(",".join(f"{k}={v}" for k, v in args.items()))
  loop.train(config, str(root / "de"), tde.build_task, log=lambda s: None)
  return {"corpus": corpus, "de": root / "de", "truth": truth, "root": root}


@pytest.fixture(scope="module")
def built(run):
  """The dual encoder loaded for inference and its index over the corpus."""
  de = search.load_dual_encoder(str(run["de"]))
  corpus = search.open_corpus(str(run["corpus"].parent))
  index_dir = search.default_index_dir(de, corpus)
  record = search.build_index(de, corpus, index_dir, log=lambda s: None)
  return {"de": de, "corpus": corpus, "dir": index_dir, "record": record}


def test_index_is_the_models_embeddings_written_once(run, built):
  de, corpus, index_dir = built["de"], built["corpus"], pathlib.Path(str(built["dir"]))
  assert index_dir == run["de"] / search.DEFAULT_INDEX / "label_truth-v1-step150"
  record = json.loads((index_dir / search.INDEX_FILE).read_text())
  assert record["num_clips"] == len(run["truth"]) and record["num_rejected"] == 0
  assert record["num_shards"] == 2 and record["dual_encoder"]["step"] == 150
  # Equal to embeddings computed here, clip by clip, with the frames decoded here.
  index = search.Index(index_dir)
  rows = [r for u in range(2) for r in corpus.unit_rows(u)]
  assert index.clip_ids == [r["clip_id"] for r in rows]
  frames = np.stack(search.decode_rows(corpus, rows, 2, de.fps, 16, 1))
  np.testing.assert_allclose(index.embeddings, de.videos(frames), atol=1e-5)
  cap = de.texts(rows[3]["captions"])
  np.testing.assert_allclose(index.caption_scores[rows[3]["clip_id"]],
                             cap @ index.embeddings[3], atol=1e-5)
  # Reused: a second build embeds nothing; a killed build redoes only its missing shard.
  stamp = {p.name: p.stat().st_mtime_ns for p in (index_dir / search.SHARDS).iterdir()}
  assert search.build_index(de, corpus, index_dir, log=lambda s: None) == record
  (index_dir / search.INDEX_FILE).unlink()
  (index_dir / search.SHARDS / "shard-00001.json").unlink()
  logs = []
  again = search.build_index(de, corpus, index_dir, log=logs.append)
  assert "(1 of this process's 2 done already)" in logs[0]
  assert {k: v for k, v in again.items() if k != "seconds"} == {
      k: v for k, v in record.items() if k != "seconds"}
  assert (index_dir / search.SHARDS / "shard-00000.npy").stat().st_mtime_ns == stamp[
      "shard-00000.npy"]
  # Another checkpoint step is another index: refused by name.
  other = dict(json.loads((index_dir / search.INDEX_FILE).read_text()))
  other["dual_encoder"] = {**other["dual_encoder"], "step": 100}
  moved = run["root"] / "other_index"
  shutil.copytree(index_dir, moved)
  (moved / search.INDEX_FILE).write_text(json.dumps(other))
  with pytest.raises(search.IndexMismatch, match="step"):
    search.Index(moved).check(de, corpus)
  with pytest.raises(search.IndexMissing, match="no search index"):
    search.Index(run["root"] / "nowhere")


def test_index_on_a_bucket_equals_the_local_one(built, gcs_bucket):
  remote = f"{gcs_bucket}/search_index"
  record = search.build_index(built["de"], built["corpus"], remote, log=lambda s: None)
  assert record["num_clips"] == built["record"]["num_clips"]
  local, there = search.Index(built["dir"]), search.Index(remote)
  assert there.clip_ids == local.clip_ids and there.caption_scores == local.caption_scores
  np.testing.assert_array_equal(there.embeddings, local.embeddings)


def _start_server(args: list[str], log: pathlib.Path) -> tuple[subprocess.Popen, str]:
  cmd = [sys.executable, "-m", "viit_jax.serve", "--port=0", *args]
  f = open(log, "w")
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=f, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
  line = ""
  deadline = time.time() + 180
  while time.time() < deadline:
    line = proc.stdout.readline()
    if not line and proc.poll() is not None:
      break
    if line.startswith("serving on "):
      return proc, line.split()[2]
  proc.kill()
  raise AssertionError(f"the server did not start: {line!r}\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(run, built, tmp_path_factory):
  proc, url = _start_server([f"--dual_encoder={run['de']}", f"--corpus={run['corpus'].parent}"],
                            tmp_path_factory.mktemp("server") / "server.log")
  yield url
  proc.terminate()
  proc.wait(timeout=30)


def _get(url: str) -> tuple[int, str]:
  try:
    with urllib.request.urlopen(url, timeout=60) as r:
      return r.status, r.read().decode()
  except urllib.error.HTTPError as e:
    return e.code, e.read().decode()


def _query_clip(built, truth) -> tuple[str, str]:
  """A ground-truth query the model ranks its own clip first for: (query, clip id).

  The query is a paraphrase of the clip's script the corpus does not hold (another random stream).
  """
  de = built["de"]
  index = search.Index(built["dir"])
  records = caption_ceiling.pool_records(pathlib.Path(built["corpus"].video_root).parent)
  fresh = caption_ceiling.paraphrase_sets(records, index.clip_ids, 1, seed=0, stream=7)
  for cid in index.clip_ids:
    q = fresh[cid][0]
    if q in truth[cid]:
      continue
    scores = index.embeddings @ de.texts([q])[0]
    if int(np.argmax(scores)) == index.clip_ids.index(cid) and np.sum(scores == scores.max()) == 1:
      return q, cid
  raise AssertionError("the trained dual encoder ranks no clip first for its own paraphrase")


def test_search_page_in_headless_chromium(run, built, server, tmp_path):
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import expected_conditions as ec  # noqa: E501
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top
  query, clip_id = _query_clip(built, run["truth"])
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1200,1400"):
    options.add_argument(a)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  try:
    driver.get(server)
    box = driver.find_element(By.ID, "q")
    box.send_keys(query)
    driver.find_element(By.ID, "go").click()
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.ID, "results")))
    results = driver.find_elements(By.CSS_SELECTOR, "ol#results > li.result")
    assert len(results) == min(10, len(run["truth"]))
    assert results[0].get_attribute("data-clip-id") == clip_id
    assert run["truth"][clip_id][0] in results[0].text
    # Every frame strip loaded (naturalWidth > 0): T frames side by side.
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    widths = driver.execute_script("return [...document.images].map(i => i.naturalWidth)")
    assert widths == [2 * 96] * len(results)
    driver.save_screenshot(str(tmp_path / "search.png"))
    # The clip page: every caption with its score, the index's.
    results[0].find_element(By.TAG_NAME, "a").click()
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.ID, "captions")))
    cells = driver.find_elements(By.CSS_SELECTOR, "#captions tr.caption")
    scores = search.Index(built["dir"]).caption_scores[clip_id]
    assert [c.text for c in cells] == [f"{t} {s:.4f}" for t, s in zip(run["truth"][clip_id],
                                                                     scores)]
    driver.save_screenshot(str(tmp_path / "clip.png"))
  finally:
    driver.quit()
  for name in ("search.png", "clip.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_get_a_message_and_a_4xx(run, built, server, tmp_path):
  q = urllib.parse.quote
  cases = {"/?q=": (400, "empty query"), "/?q=%20%20": (400, "empty query"),
           f"/?q={q('x' * 10240)}": (400, "query too long: 10240 characters"),
           f"/api/search?q={q('y' * 10240)}": (400, "query too long"),
           "/?q=circle&k=0": (400, "k must be between"), "/?q=circle&k=two": (400, "integer"),
           "/clip/no-such-clip": (404, "no clip &#39;no-such-clip&#39;"),
           "/strip/no-such-clip.png": (404, "no clip"), "/nothing/here": (404, "no page")}
  for path, (status, message) in cases.items():
    code, body = _get(server + path.lstrip("/"))
    assert code == status and message in body and "Traceback" not in body, (path, code, body)
  code, body = _get(server + "api/search?q=a%20circle&k=3")
  assert code == 200 and len(json.loads(body)["results"]) == 3
  # No index (a server told not to build one): every search says where it is missing, 404.
  proc, url = _start_server([f"--dual_encoder={run['de']}", f"--corpus={run['corpus']}",
                             f"--index={tmp_path / 'no_index'}", "--build_index=false"],
                            tmp_path / "server.log")
  try:
    for path in ("", "?q=circle", "api/search?q=circle", f"clip/{next(iter(run['truth']))}"):
      code, body = _get(url + path)
      assert code == 404 and "no search index at" in body and "Traceback" not in body, (path,
                                                                                       body)
  finally:
    proc.terminate()
    proc.wait(timeout=30)


def test_query_latency_benchmark_runs(run, built, server, capsys):
  from viit_jax.benchmarks import search as bench  # pylint: disable=g-import-not-at-top
  # The module's server (started as the benchmark starts its own: `viit_jax.serve --port=0`).
  result = bench.main([f"--dual_encoder={run['de']}", f"--corpus={run['corpus']}",
                       "--queries=4", "--k=5", f"--url={server}"])
  out = capsys.readouterr().out
  assert result["clips"] == len(run["truth"])
  assert 0 < result["server_ms"] < result["api_ms"] and result["healthz_ms"] > 0
  assert f"median query latency: {result['page_ms']:.1f} ms (page)" in out
  assert "| reference: /healthz round trip | 4 |" in out


def test_filter_captions_keeps_what_the_dual_encoder_agrees_with(run, built, tmp_path):
  from configs import filter_captions as fc_config  # pylint: disable=g-import-not-at-top
  from viit_jax import filter_captions as fc  # pylint: disable=g-import-not-at-top
  index = search.Index(built["dir"])
  source = {r["clip_id"]: r for r in caption_sets.caption_rows(run["corpus"])}

  def config(**kw):
    args = {"dual_encoder": run["de"], "corpus": run["corpus"].parent, **kw}
    return fc_config.get_config(",".join(f"{k}={v}" for k, v in args.items()))

  # top_k=1: each clip keeps its best caption under the index's scores, with its score.
  manifest = fc.run(config(top_k=1), str(tmp_path / "top1"), log=lambda s: None)
  rows = list(caption_sets.caption_rows(tmp_path / "top1" / "v1"))
  assert len(rows) == len(source) == manifest["num_captioned"]
  for r in rows:
    scores = index.caption_scores[r["clip_id"]]
    best = int(np.argmax(scores))
    assert r["captions"] == [source[r["clip_id"]]["captions"][best]]
    assert r["dual_encoder_scores"] == [scores[best]]
  assert manifest["filter"]["top_k"] == 1 and manifest["filter"]["dual_encoder"]["step"] == 150
  assert manifest["filter"]["source"] == str(run["corpus"])
  assert "## Filter" in (tmp_path / "top1" / "v1" / "CARD.md").read_text()
  # A rerun finds every unit written: nothing changes.
  meta = tmp_path / "top1" / "v1" / "units" / "unit-00000.meta.json"
  stamp = meta.stat().st_mtime_ns
  fc.run(config(top_k=1), str(tmp_path / "top1"), log=lambda s: None)
  assert meta.stat().st_mtime_ns == stamp
  with pytest.raises(ValueError, match="other settings"):
    fc.run(config(top_k=2), str(tmp_path / "top1"), log=lambda s: None)

  # A threshold: the captions at or above it; clips left with none are dropped and counted.
  every = sorted(s for v in index.caption_scores.values() for s in v)
  cut = every[len(every) * 2 // 3]
  manifest = fc.run(config(min_score=cut), str(tmp_path / "cut"), log=lambda s: None)
  rows = {r["clip_id"]: r for r in caption_sets.caption_rows(tmp_path / "cut" / "v1")}
  for cid, r in source.items():
    kept = [c for c, s in zip(r["captions"], index.caption_scores[cid]) if s >= cut]
    assert sorted(rows[cid]["captions"]) == sorted(kept) if kept else cid not in rows
  empty = sum(1 for cid in source if max(index.caption_scores[cid]) < cut)
  assert empty > 0 and manifest["rejects_per_reason"] == {fc.NO_CAPTION_KEPT: empty}
  assert manifest["num_captioned"] == len(source) - empty
  # The dual encoder's caption task reads the filtered version like any auto-labeling output.
  from data import caption_tasks  # pylint: disable=g-import-not-at-top
  from data import preprocessors as pp  # pylint: disable=g-import-not-at-top
  name = caption_tasks.register_caption_task(
      "test_filtered_captions", tmp_path / "cut" / "v1", None, num_frames=2, fps=1.0, res=16,
      vocab_path=built["de"].source.trained("data", "world_dir") + "/spm/demo.model")
  import seqio  # pylint: disable=g-import-not-at-top
  ds = seqio.get_mixture_or_task(name).get_dataset(None, split="train", shuffle=False)
  ids = [ex["clip_id"].decode() for ex in pp.numpy_iterator(ds)]
  assert ids == list(rows)
  with pytest.raises(ValueError, match="nothing to filter"):
    fc.run(config(), str(tmp_path / "none"), log=lambda s: None)
