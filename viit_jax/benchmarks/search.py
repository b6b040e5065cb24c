"""Query latency of the search page (`make serve`) over an auto-labeled corpus.

  python -m viit_jax.benchmarks.search --dual_encoder=runs/demo/de_viit \
      --corpus=runs/demo/label_viit [--queries=50] [--k=10] [--url=http://HOST:PORT/]

Starts `python -m viit_jax.serve` on a free port of 127.0.0.1 (building its index when missing,
outside the timings), or with `--url` times a server already running there (serving the same
corpus: the queries are read from `--corpus`). Sends `--queries` text queries, the corpus' own
alt-texts in corpus order, each as the HTML page (`/?q=`) and as JSON (`/api/search?q=`), one at
a time over HTTP. Prints median / p90 / max milliseconds per kind, the server's own time per query
(text tower + index scan, from the JSON's took_ms), and as the reference measured in the same run
the round trip of `/healthz` (the HTTP and Flask overhead with no model work). The last line is
`median query latency: X ms (page)`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence


def _ms(url: str) -> tuple[float, bytes]:
  t0 = time.perf_counter()
  with urllib.request.urlopen(url, timeout=60) as r:
    body = r.read()
    if r.status != 200:
      raise RuntimeError(f"{url}: HTTP {r.status}")
  return (time.perf_counter() - t0) * 1e3, body


def _row(name: str, values: Sequence[float]) -> str:
  v = sorted(values)
  p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
  return f"| {name} | {len(v)} | {statistics.median(v):.1f} | {p90:.1f} | {v[-1]:.1f} |"


def start_server(args: Sequence[str]) -> tuple[subprocess.Popen, str]:
  """`python -m viit_jax.serve --port=0 ARGS`; returns (process, base URL) once it listens."""
  proc = subprocess.Popen([sys.executable, "-m", "viit_jax.serve", "--port=0", *args],
                          stdout=subprocess.PIPE, text=True)
  for line in proc.stdout:
    print(line, end="", flush=True)
    if line.startswith("serving on "):
      return proc, line.split()[2]
  proc.wait()
  raise RuntimeError(f"viit_jax.serve exited with {proc.returncode} before serving")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dual_encoder", required=True)
  p.add_argument("--corpus", required=True)
  p.add_argument("--index", default="")
  p.add_argument("--queries", type=int, default=50)
  p.add_argument("--k", type=int, default=10)
  p.add_argument("--url", default="", help="A running server's base URL ('' = start one).")
  a = p.parse_args(argv)
  proc, url = None, a.url.rstrip("/") + "/"
  if not a.url:
    proc, url = start_server([f"--dual_encoder={a.dual_encoder}", f"--corpus={a.corpus}",
                              *([f"--index={a.index}"] if a.index else [])])
  try:
    from viit_jax import search  # pylint: disable=g-import-not-at-top
    corpus = search.open_corpus(a.corpus)
    queries = [r["alt_text"] for u in range(len(corpus.manifest["units"]))
               for r in corpus.unit_rows(u)][:a.queries]
    clips = json.loads(_ms(url + "healthz")[1])["clips"]
    page, api, server, health = [], [], [], []
    for q in queries:
      quoted = urllib.parse.quote(q)
      health.append(_ms(url + "healthz")[0])
      page.append(_ms(f"{url}?q={quoted}&k={a.k}")[0])
      ms, body = _ms(f"{url}api/search?q={quoted}&k={a.k}")
      api.append(ms)
      server.append(float(json.loads(body)["took_ms"]))
  finally:
    if proc is not None:
      proc.terminate()
      proc.wait(timeout=30)
  print(f"\n{len(queries)} queries over {clips} clips, top {a.k}, one at a time\n")
  print("| request | n | median ms | p90 ms | max ms |\n|---|---|---|---|---|")
  for name, values in (("search page /?q=", page), ("JSON /api/search", api),
                       ("server time per query (text tower + index)", server),
                       ("reference: /healthz round trip", health)):
    print(_row(name, values))
  result = {"page_ms": statistics.median(page), "api_ms": statistics.median(api),
            "server_ms": statistics.median(server), "healthz_ms": statistics.median(health),
            "clips": clips}
  print(f"\nmedian query latency: {result['page_ms']:.1f} ms (page)", flush=True)
  return result


if __name__ == "__main__":
  main()
