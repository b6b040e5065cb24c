"""Data cards: CARD.md beside the manifest of every auto-labeling version and synthesized set.

A version's card says what it is, from its manifest.json and its rows: source corpus, model
checkpoint and step (or the instruction writer), decoding settings, counts with rejects by reason,
caption / answer length and vocabulary histograms (PNG plots in card_files/), examples and known
limits. viit_jax.autolabel and viit_jax.synthesize write it when a version finishes;

  python -m viit_jax.cards DIR [DIR ...]

(re)writes the cards of finished versions (local or gs://).
"""
from __future__ import annotations

import collections
import io
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from viit_jax import paths

CARD = "CARD.md"
NA = "n/a"
FILES = "card_files"
NUM_EXAMPLES = 5
TOP_WORDS = 20
_WORD = re.compile(r"[a-z']+")


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig: Any, out_dir: paths.Path, name: str) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
  _plt().close(fig)
  paths.write_atomic(out_dir / FILES / name, buf.getvalue())
  return f"{FILES}/{name}"


def length_histogram(series: Mapping[str, Sequence[str]], out_dir: paths.Path, name: str) -> str:
  """Words per text of each named series, one histogram; returns the PNG's relative path."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3))
  longest = max((len(t.split()) for texts in series.values() for t in texts), default=1)
  bins = range(0, longest + 2)
  for label, texts in series.items():
    ax.hist([len(t.split()) for t in texts], bins=bins, alpha=0.6, label=label)
  ax.set_xlabel("words")
  ax.set_ylabel("count")
  ax.legend()
  return _save(fig, out_dir, name)


def top_words(texts: Iterable[str], k: int = TOP_WORDS) -> list[tuple[str, int]]:
  counts = collections.Counter(w for t in texts for w in _WORD.findall(t.lower()))
  return counts.most_common(k)


def words_plot(words: Sequence[tuple[str, int]], out_dir: paths.Path, name: str) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3))
  ax.bar([w for w, _ in words], [c for _, c in words])
  ax.tick_params(axis="x", rotation=70)
  ax.set_ylabel("count")
  return _save(fig, out_dir, name)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
  lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
  return lines


def _reasons(reasons: Mapping[str, int]) -> str:
  return ", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"


def _filter_section(manifest: Mapping[str, Any]) -> list[str]:
  """A filtered version's filter (viit_jax.filter_captions); none for a captioner's version."""
  f = manifest.get("filter")
  if not f:
    return []
  return ["## Filter", "",
          "Captions of the source version kept by viit_jax.filter_captions: cosine to their clip "
          "under the dual encoder below at least `min_score`, then the clip's `top_k` best.", "",
          *_table([["source version", f"`{f['source']}`"],
                   ["dual encoder", f"`{f['dual_encoder']['path']}` step "
                                    f"{f['dual_encoder']['step']}"],
                   ["min_score", f["min_score"]], ["top_k", f["top_k"] or "no limit"],
                   ["index", f"`{f['index']}`"]], ["", ""]), ""]


def autolabel_card(out_dir: paths.Path, manifest: Mapping[str, Any],
                   rows: Sequence[Mapping[str, Any]]) -> str:
  """The card of an auto-labeling version (viit_jax.autolabel's manifest and caption rows);
  settings a manifest lacks (a version written by other code) show as n/a."""
  ck, corpus, dec = (manifest.get("checkpoint", {}), manifest["corpus"],
                     manifest.get("decode", {}))
  fr = manifest.get("frames", {})
  frames = (f"{fr['num_frames']} at {fr['fps']} fps, {fr['res']} px"
            + (" (one caption per frame)" if fr.get("per_frame") else "")) if fr else NA
  sha = manifest.get("tokenizer", {}).get("sha256")
  captions = [c for r in rows for c in r["captions"]]
  alt = [r.get("alt_text", "") for r in rows]
  lengths = length_histogram({"captions": captions, "alt-text": alt}, out_dir,
                             "caption_lengths.png")
  words = top_words(captions)
  vocab = words_plot(words, out_dir, "caption_words.png")
  stats = manifest["stats"]
  lines = [
      f"# Data card: auto-labeling version `{manifest.get('version', NA)}` "
      f"(mode `{manifest.get('mode', NA)}`)", "",
      f"Machine captions of {manifest['num_captioned']:,} clips of a {corpus.get('format', NA)} "
      f"corpus, {dec.get('num_samples', 1)} per clip, written by viit_jax.autolabel "
      f"(finished {manifest['finished']}).", "",
      "## Source", "",
      *_table([["corpus file", f"`{corpus.get('file', NA)}`"],
               ["video root", f"`{corpus.get('video_root', NA)}`"],
               ["clips listed", f"{corpus.get('num_clips', 0):,}"],
               ["limit", corpus.get("limit", NA)],
               ["fingerprint", f"`{corpus.get('fingerprint', NA)}`"]], ["", ""]), "",
      "## Model and decoding", "",
      *_table([["checkpoint", f"`{ck.get('path', NA)}`"], ["step", ck.get("step", NA)],
               ["experiment", ck.get("experiment", NA)], ["variant", ck.get("variant", NA)],
               ["compute dtype", manifest.get("model", {}).get("dtype", NA)],
               ["prompt", f"`{manifest.get('prompt', NA)}`"],
               ["tokenizer sha256", f"`{sha[:16]}...`" if sha else NA], ["frames", frames],
               *[[f"decode.{k}", v] for k, v in dec.items()]], ["", ""]), "",
      *_filter_section(manifest),
      "## Counts", "",
      *_table([["clips captioned", manifest["num_captioned"]],
               ["clips rejected", f"{manifest['num_rejected']} "
                                  f"({_reasons(manifest['rejects_per_reason'])})"],
               ["input rows rejected", manifest["num_input_rows_rejected"]],
               ["captions", len(captions)]], ["", ""]), "",
      "## Captions", "",
      *_table([[name, f"{s.get('mean_words', float('nan')):.2f}", s.get("unique_words"),
                f"{s.get('motion_verb_share', float('nan')):.3f}"]
               for name, s in (("first caption", stats["first_caption"]),
                               ("all captions", stats["all_captions"]),
                               ("alt-text", stats["alt_text"]))],
              ["texts", "words per text", "distinct words", "motion-verb share"]), "",
      f"![words per caption]({lengths})", "", f"![most frequent caption words]({vocab})", "",
      "## Examples", ""]
  for r in rows[:NUM_EXAMPLES]:
    lines += [f"- `{r['clip_id']}` (alt-text: {r.get('alt_text', '')!r})"]
    lines += [f"  - {c}" for c in r["captions"]]
  lines += ["", "## Known limits", "",
            "- Machine captions: they carry the captioning model's errors and biases; the "
            f"{dec.get('num_samples', 1)} samples of a clip may disagree with each other.",
            "- Rejected clips (rejects.jsonl, by reason above) have no captions: the corpus "
            "covered is the captioned part only.",
            "- The alt-text is the corpus' own noisy text, kept for comparison, not checked.",
            "- Only as good as the checkpoint named above: a different step gives different "
            "captions (the version records its step and tokenizer hash)."]
  return "\n".join(lines) + "\n"


def synthesis_card(out_dir: paths.Path, manifest: Mapping[str, Any],
                   rows: Sequence[Mapping[str, Any]]) -> str:
  """The card of a synthesized instruction set (viit_jax.synthesize's manifest and records)."""
  by_kind: dict[str, list[Mapping[str, Any]]] = collections.defaultdict(list)
  for r in rows:
    by_kind[r["kind"]].append(r)
  lengths = length_histogram({k: [r["answer"] for r in v] for k, v in sorted(by_kind.items())},
                             out_dir, "answer_lengths.png")
  vocab = words_plot(top_words(r["question"] for r in rows), out_dir, "question_words.png")
  settings = [[k, v] for k, v in manifest.items() if isinstance(v, (str, int, float, bool))
              and k not in ("note", "finished")]
  lines = [
      f"# Data card: synthesized instruction set `{manifest.get('version', '')}`", "",
      f"{manifest['num_examples']:,} instruction pairs, {manifest['note']} "
      f"(finished {manifest['finished']}).", "",
      "## Settings", "", *_table(settings, ["", ""]), "",
      "## Counts", "",
      *_table([[k, manifest["prompts_per_kind"].get(k, 0), n,
                manifest["rejects_per_kind"].get(k, 0)]
               for k, n in manifest["counts_per_kind"].items()],
              ["kind", "prompts", "accepted", "rejected"]), "",
      f"Reject rate {manifest['reject_rate']:.3f}; rejects by reason: "
      f"{_reasons(manifest['rejects_per_reason'])}; input rows rejected: "
      f"{_reasons(manifest.get('input_rejects_per_reason', {}))}.", "",
      f"![words per answer]({lengths})", "", f"![most frequent question words]({vocab})", "",
      "## Examples", ""]
  for kind, recs in sorted(by_kind.items()):
    for r in recs[:2]:
      lines.append(f"- {kind}, `{r['clip_id']}`: Q: {r['question']} A: {r['answer']}")
  lines += ["", "## Known limits", "",
            ("- Written by a rule-based stand-in for an LLM from the narratives' structure: its "
             "language is templated, not a language model's." if manifest.get("stand_in_for_llm")
             else "- Written by a language model: its answers can be wrong or unsupported by the "
                  "video; the validator only rejects malformed or off-format replies."),
            "- Questions come from one narrative per clip; what the narrative omits, the set "
            "does not ask about.",
            "- Rejected prompts (rejects.jsonl, by reason above) leave those clips with fewer "
            "pairs of their kind."]
  return "\n".join(lines) + "\n"


def write_card(out_dir: paths.PathLike) -> paths.Path:
  """Writes CARD.md (and card_files/) of the finished version in `out_dir`; returns its path."""
  root = paths.path(out_dir)
  manifest = paths.read_json(root / "manifest.json")
  names = manifest.get("units") or [f"unit-{i:05d}.jsonl"  # records.UnitFiles' names
                                    for i in range(int(manifest["num_units"]))]
  rows = [r for name in names for r in paths.read_jsonl(root / "units" / name)]
  card = (autolabel_card(root, manifest, rows) if "num_captioned" in manifest
          else synthesis_card(root, manifest, rows))
  paths.write_text(root / CARD, card)
  return root / CARD


def main(argv: Sequence[str]) -> int:
  if not argv:
    print(__doc__, file=sys.stderr)
    return 2
  for d in argv:
    print(write_card(d))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
