"""Open-ended video QA accuracy (MSR-VTT-QA, ActivityNet-QA): exact match after normalisation.

Both benchmarks have one short reference answer per question (mostly one word) and score a prediction as
correct iff it equals the answer. Generated answers differ from references in case, punctuation, articles
and spacing, so both sides are normalised first (`normalize_answer`), in this order:

1. lower-case;
2. every punctuation character (Python's `string.punctuation`, ASCII) becomes a space, so "t-shirt" ->
   "t shirt" on both sides and "man." -> "man";
3. the articles "a", "an", "the" are dropped as whole words;
4. whitespace runs collapse to one space, with no leading or trailing space.

(This is SQuAD's answer normalisation, except that punctuation becomes a space instead of being deleted.)
No lemmatisation or synonym matching: "dogs" != "dog", as in the benchmarks' own accuracy.
"""
from __future__ import annotations

import re
import string
from collections.abc import Sequence

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
  """Lower-cased, punctuation -> space, articles removed, whitespace collapsed."""
  text = _PUNCTUATION.sub(" ", text.lower())
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def exact_match(prediction: str, references: Sequence[str]) -> bool:
  """Whether the normalised prediction equals any normalised reference."""
  pred = normalize_answer(prediction)
  return any(pred == normalize_answer(ref) for ref in references)


def qa_accuracy(predictions: Sequence[str], references: Sequence[Sequence[str]],
                question_types: Sequence[str] | None = None) -> dict[str, float]:
  """Exact-match accuracy x100.

  Args:
    predictions: one generated answer per question.
    references: per question, its accepted answers (one for MSR-VTT-QA and ActivityNet-QA).
    question_types: optional per-question type (e.g. MSR-VTT-QA's what/who/how/when/where) for a breakdown.

  Returns:
    {"accuracy", "count"} plus "accuracy/<type>" and "count/<type>" when types are given.
  """
  if len(predictions) != len(references):
    raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists.")
  if question_types is not None and len(question_types) != len(predictions):
    raise ValueError(f"{len(question_types)} question types for {len(predictions)} predictions.")
  if not predictions:
    raise ValueError("No questions to score.")
  if any(not refs for refs in references):
    raise ValueError("Every question needs at least one reference answer.")
  hits = [exact_match(p, refs) for p, refs in zip(predictions, references)]
  result = {"accuracy": 100.0 * sum(hits) / len(hits), "count": float(len(hits))}
  if question_types is not None:
    for qtype in sorted(set(question_types)):
      sel = [h for h, t in zip(hits, question_types) if t == qtype]
      result[f"accuracy/{qtype}"] = 100.0 * sum(sel) / len(sel)
      result[f"count/{qtype}"] = float(len(sel))
  return result
