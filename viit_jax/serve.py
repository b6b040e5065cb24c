"""Text-to-video search over an auto-labeled corpus in the browser (`make serve` after `make demo`).

  python -m viit_jax.serve --dual_encoder=RUN/de_viit --corpus=RUN/label_viit [--port=8080]
      [--host=127.0.0.1] [--index=DIR] [--build_index=true] [--build_index_only]

Reads top to bottom: flags -> the dual encoder (its latest checkpoint, frames and tokenizer as it
was trained) -> the corpus version (manifest + caption rows) -> the on-disk index (viit_jax.search:
video embeddings sharded per work unit and every caption's score, written once by the first start
or by --build_index_only, reused on restart; default
<dual_encoder>/search_index/<corpus>-<version>-step<N>) -> the web app (Flask) on host:port
until Ctrl-C.

Pages:
  /?q=TEXT[&k=N]      the search box and the N (default 10) clips closest to TEXT: each clip's
                      frame strip (links to its page), score, alt-text and captions
  /clip/<clip_id>     the clip playing, its frame strip, every caption with its dual-encoder score
  /api/search?q=&k=   the same results as JSON; /strip/<clip_id>.png, /video/<clip_id>; /healthz
Bad requests get a message and a 4xx status, never a stack trace: an empty query or one over 1,000
characters (400), a bad k (400), an unknown clip (404), no index (404: started with
--build_index=false before the index was built).
"""
from __future__ import annotations

import functools
import io
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from absl import app
from absl import flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS
flags.DEFINE_string("dual_encoder", None, "Dual-encoder trainer workdir (its latest checkpoint).")
flags.DEFINE_integer("step", -1, "Checkpoint step of the dual encoder (-1: latest).")
flags.DEFINE_string("corpus", None, "Auto-labeling workdir (its only finished version) or version "
                    "directory.")
flags.DEFINE_string("version", "", "The corpus version when its workdir holds several.")
flags.DEFINE_string("video_root", "", "Where the corpus' videos are ('' = its manifest's root).")
flags.DEFINE_string("index", "", "Index directory ('' = <dual_encoder>/search_index/"
                    "<corpus>-<version>-step<N>).")
flags.DEFINE_bool("build_index", True, "Build the index when it is missing (else serve 404s).")
flags.DEFINE_bool("build_index_only", False, "Build (or finish) the index and exit.")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
flags.DEFINE_integer("port", 8080, "Port (0: any free port; the line 'serving on URL' names it).")
flags.DEFINE_integer("strip_res", 96, "Frame strip height in pixels.")
flags.mark_flags_as_required(["dual_encoder", "corpus"])

DEFAULT_K = 10
MAX_K = 100
STRIP_CACHE = 512  # Frame strips kept in memory.

_STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:70em}
input[name=q]{width:40em;font-size:1.1em;padding:.3em}
.error{color:#b00;font-weight:bold}
ol#results>li{margin:.6em 0;padding:.5em;border-bottom:1px solid #ddd;overflow:auto}
li.result>a{float:left;margin-right:1em}
li.result>div{overflow:hidden}
ol#results{list-style:none;padding-left:0}
ul.captions{margin:.3em 0;padding-left:1.2em}
img.strip{image-rendering:pixelated;display:block}
.score{font-family:monospace;color:#555}
td,th{padding:.2em .8em;text-align:left}
"""

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style|safe }}</style></head><body>
<h1><a href="/">viit_jax search</a></h1>
<p>{{ corpus_line }}</p>
<form action="/" method="get"><input id="q" name="q" value="{{ q }}" autofocus
 placeholder="a red circle moves left"> <button id="go" type="submit">Search</button></form>
{% if message %}<p class="error" id="message">{{ message }}</p>{% endif %}
{% if hits is not none %}
<p id="summary">{{ hits|length }} best of {{ num_clips }} clips for "{{ q }}" ({{ took_ms }} ms)</p>
<ol id="results">{% for h in hits %}
<li class="result" data-clip-id="{{ h.clip_id }}">
 <a href="/clip/{{ h.clip_id }}"><img class="strip" src="/strip/{{ h.clip_id }}.png"
  alt="frames of clip {{ h.clip_id }}"></a>
 <div><b>{{ loop.index }}.</b> clip <b>{{ h.clip_id }}</b>
 <span class="score">score {{ "%.4f"|format(h.score) }}</span>
 <div class="alt">alt-text: {{ h.alt_text }}</div>
 <ul class="captions">{% for c in h.captions %}<li>{{ c }}</li>{% endfor %}</ul></div>
</li>{% endfor %}</ol>{% endif %}
{% if clip %}
<h2 id="clip">clip {{ clip.clip_id }}</h2>
<video controls width="{{ video_width }}" src="/video/{{ clip.clip_id }}"></video>
<img class="strip" src="/strip/{{ clip.clip_id }}.png" alt="frames of clip {{ clip.clip_id }}">
<table id="captions"><tr><th>text</th><th>dual-encoder score</th></tr>
<tr class="alt"><td>alt-text: {{ clip.alt_text }}</td>
<td class="score">{{ "%.4f"|format(clip.alt_score) }}</td></tr>
{% for c, s in clip.captions %}<tr class="caption"><td>{{ c }}</td>
<td class="score">{{ "%.4f"|format(s) }}</td></tr>{% endfor %}</table>
{% endif %}
</body></html>"""


class BadRequest(Exception):
  """A request the app answers with `status` and `message` (no stack trace)."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status, self.message = status, message


class Searcher:
  """The dual encoder, the corpus rows and the index, as the app queries them."""

  def __init__(self, de: Any, corpus: Any, index: Any, strip_res: int):
    from viit_jax import search  # pylint: disable=g-import-not-at-top
    self.de, self.corpus, self.index, self.strip_res = de, corpus, index, strip_res
    self.rows: dict[str, dict[str, Any]] = {}
    for u in range(len(corpus.manifest["units"])):
      self.rows.update((r["clip_id"], r) for r in corpus.unit_rows(u))
    self.max_query = search.MAX_QUERY_CHARS
    self.strip_png = functools.lru_cache(maxsize=STRIP_CACHE)(self._strip_png)

  def query(self, q: str, k: int) -> tuple[list[dict[str, Any]], float]:
    """The k best clips for text q: ({clip_id, score, alt_text, captions}, milliseconds)."""
    t0 = time.perf_counter()
    hits = self.index.search(self.de.texts([q])[0], k)
    out = [{"clip_id": h.clip_id, "score": h.score, "alt_text": self.rows[h.clip_id]["alt_text"],
            "captions": list(self.rows[h.clip_id]["captions"])} for h in hits]
    return out, (time.perf_counter() - t0) * 1e3

  def row(self, clip_id: str) -> dict[str, Any]:
    if clip_id not in self.rows or clip_id not in self.index.caption_scores:
      raise BadRequest(404, f"no clip {clip_id!r} in {self.corpus.dir} (or it did not decode "
                       "when the index was built)")
    return self.rows[clip_id]

  def _strip_png(self, clip_id: str) -> bytes:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    from viit_jax import search  # pylint: disable=g-import-not-at-top
    frames = search.decode_rows(self.corpus, [self.row(clip_id)], self.de.num_frames,
                                self.de.fps, self.strip_res, 1)[0]
    if not hasattr(frames, "shape"):
      raise BadRequest(404, f"clip {clip_id!r} no longer decodes: {frames}")
    strip = frames.transpose(1, 0, 2, 3).reshape(frames.shape[1], -1, 3)  # [H, T * W, 3]
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="PNG")
    return buf.getvalue()


def _query_args(args: Mapping[str, str], max_chars: int) -> tuple[str, int]:
  q = (args.get("q") or "").strip()
  if not q:
    raise BadRequest(400, "empty query: type a few words that describe the clip")
  if len(q) > max_chars:
    raise BadRequest(400, f"query too long: {len(q)} characters, at most {max_chars}")
  try:
    k = int(args.get("k") or DEFAULT_K)
  except ValueError:
    raise BadRequest(400, f"k must be an integer, got {args.get('k')!r}") from None
  if not 1 <= k <= MAX_K:
    raise BadRequest(400, f"k must be between 1 and {MAX_K}, got {k}")
  return q, k


def create_app(searcher: Searcher | None, missing: str = "") -> Any:
  """The Flask app over `searcher`; None (with `missing`, why) answers every search with 404."""
  import flask  # pylint: disable=g-import-not-at-top
  web = flask.Flask("viit_jax.serve")
  num_clips = len(searcher.index.clip_ids) if searcher else 0
  corpus_line = (f"{num_clips} clips of {searcher.corpus.dir}, dual encoder "
                 f"{searcher.de.source.path} step {searcher.de.source.step}" if searcher
                 else "no index")

  def page(status: int = 200, **kw: Any) -> Any:
    ctx = {"title": "viit_jax search", "style": _STYLE, "corpus_line": corpus_line, "q": "",
           "message": "", "hits": None, "clip": None, "num_clips": num_clips,
           "video_width": 4 * (searcher.strip_res if searcher else 96), **kw}
    return flask.render_template_string(_PAGE, **ctx), status

  def need() -> Searcher:
    if searcher is None:
      raise BadRequest(404, missing)
    return searcher

  @web.errorhandler(BadRequest)
  def bad(e: BadRequest) -> Any:
    if flask.request.path.startswith("/api/"):
      return flask.jsonify({"error": e.message}), e.status
    return page(e.status, message=e.message, q=flask.request.args.get("q", "")[:200])

  @web.errorhandler(404)
  def not_found(e: Any) -> Any:
    del e
    return bad(BadRequest(404, f"no page {flask.request.path}"))

  @web.errorhandler(Exception)
  def internal(e: Exception) -> Any:
    from werkzeug import exceptions  # pylint: disable=g-import-not-at-top
    if isinstance(e, exceptions.HTTPException):  # 405, 413, ...: their own status.
      return bad(BadRequest(e.code or 400, e.description or e.name))
    web.logger.exception("request %s failed", flask.request.path)
    return bad(BadRequest(500, f"internal error ({type(e).__name__}); see the server's log"))

  @web.get("/")
  def home() -> Any:
    if "q" not in flask.request.args:
      if searcher is None:
        return page(404, message=missing)
      return page()
    s = need()
    q, k = _query_args(flask.request.args, s.max_query)
    hits, ms = s.query(q, k)
    return page(q=q, hits=hits, took_ms=f"{ms:.1f}")

  @web.get("/api/search")
  def api_search() -> Any:
    s = need()
    q, k = _query_args(flask.request.args, s.max_query)
    hits, ms = s.query(q, k)
    return flask.jsonify({"query": q, "k": k, "took_ms": ms, "results": hits})

  @web.get("/clip/<clip_id>")
  def clip(clip_id: str) -> Any:
    s = need()
    row = s.row(clip_id)
    scores = s.index.caption_scores[clip_id]
    return page(clip={"clip_id": clip_id, "alt_text": row["alt_text"],
                      "alt_score": s.index.alt_text_scores[clip_id],
                      "captions": list(zip(row["captions"], scores))})

  @web.get("/strip/<clip_id>.png")
  def strip(clip_id: str) -> Any:
    return flask.Response(need().strip_png(clip_id), mimetype="image/png")

  @web.get("/video/<clip_id>")
  def clip_video(clip_id: str) -> Any:
    s = need()
    from viit_jax import paths  # pylint: disable=g-import-not-at-top
    p = s.corpus.video_path(s.row(clip_id))
    if paths.is_remote(p):
      return flask.Response(paths.path(p).read_bytes(), mimetype="video/mp4")
    return flask.send_file(p, mimetype="video/mp4", conditional=True)

  @web.get("/healthz")
  def healthz() -> Any:
    return flask.jsonify({"ok": True, "clips": num_clips, "index": searcher is not None})

  return web


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from viit_jax import runtime  # pylint: disable=g-import-not-at-top
  from viit_jax import search  # pylint: disable=g-import-not-at-top
  if not FLAGS["verbosity"].present:  # Keep orbax's INFO lines out of the output.
    absl_logging.set_verbosity(absl_logging.WARNING)
  runtime.configure_runtime()
  try:
    de = search.load_dual_encoder(FLAGS.dual_encoder, step=FLAGS.step)
    corpus = search.open_corpus(FLAGS.corpus, FLAGS.version, FLAGS.video_root)
    index_dir = FLAGS.index or search.default_index_dir(de, corpus)
    if FLAGS.build_index or FLAGS.build_index_only:
      search.build_index(de, corpus, index_dir)
  except (FileNotFoundError, ValueError) as e:  # A missing run, version or a mismatched index.
    print(f"error: {e}\n(`make serve` serves the run `make demo` writes)", file=sys.stderr,
          flush=True)
    return 2
  if FLAGS.build_index_only:
    return 0
  try:
    index = search.Index(index_dir)
    index.check(de, corpus)
    searcher, missing = Searcher(de, corpus, index, FLAGS.strip_res), ""
    searcher.query("warm up", 1)  # Compiles the text tower before the first user waits for it.
  except search.IndexMissing as e:
    searcher, missing = None, str(e)
    print(f"warning: {e}", file=sys.stderr, flush=True)
  from werkzeug import serving  # pylint: disable=g-import-not-at-top
  logging.getLogger("werkzeug").setLevel(logging.WARNING)
  server = serving.make_server(FLAGS.host, FLAGS.port, create_app(searcher, missing),
                               threaded=True)
  clips = len(searcher.index.clip_ids) if searcher else 0
  print(f"serving on http://{FLAGS.host}:{server.port}/ ({clips} clips); Ctrl-C stops",
        flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
