"""Parse and validate one LLM reply into a (question, answer) pair, or a reject reason.

Every reply of every back-end goes through `check`; a failure returns a `Rejected` with a short
stable reason (counted per reason in the manifest) and never raises.
"""
from __future__ import annotations

import dataclasses
import re

SHORTQA_PREFIX = "Answer in en:"

# Words that make a question about order.
ORDER_WORDS = frozenset((
    "before", "after", "afterwards", "then", "first", "firstly", "last", "lastly", "next",
    "earlier", "later", "finally", "final", "order", "begin", "begins", "beginning", "start",
    "starts", "end", "ends", "second", "third", "until", "once", "previously", "following",
    "followed", "prior", "subsequently", "while", "when", "sequence"))
# "how" + one of these asks for a quantity, not a cause or a manner.
_HOW_QUANTITY = frozenset(("many", "much", "long", "old", "far", "big", "often", "tall", "fast"))
# A reply that talks about its input instead of the video.
_META_WORDS = re.compile(r"\b(descriptions?|narrat\w*|sentences?|annotat\w*|the text)\b")
_STOP = frozenset((
    "a", "an", "the", "it", "its", "is", "are", "was", "be", "to", "of", "in", "on", "at", "and",
    "or", "he", "she", "they", "his", "her", "their", "does", "do", "did", "this", "that", "with",
    "by", "for", "from", "as", "so", "yes", "no"))

_FIELD = re.compile(
    r"^\W{0,3}(question|q|answer|a)\W{0,3}\s*[:\uff1a]\s*(?:\*\*)?\s*(.*)$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Limits:
  """Length limits and thresholds (filled from config.validate)."""
  min_question_words: int
  max_question_words: int
  max_answer_words: int
  shortqa_max_answer_words: int   # the paper: fewer than three words -> 2
  copy_min_words: int             # an answer this long found verbatim in the narrative is a copy


@dataclasses.dataclass(frozen=True)
class Accepted:
  question: str
  answer: str


@dataclasses.dataclass(frozen=True)
class Rejected:
  reason: str
  detail: str = ""


def normalize(text: str) -> str:
  return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def words(text: str) -> list[str]:
  return normalize(text).split()


def parse(reply: str) -> tuple[str, str] | Rejected:
  """Finds exactly one "Question: ..." line and the "Answer: ..." that follows it."""
  if not reply or not reply.strip():
    return Rejected("empty_reply")
  questions: list[str] = []
  answers: list[str] = []
  current: list[str] | None = None
  for line in reply.strip().splitlines():
    m = _FIELD.match(line.strip())
    if m:
      field = m.group(1).lower()[0]
      value = m.group(2).strip().strip("*").strip()
      (questions if field == "q" else answers).append(value)
      current = questions if field == "q" else answers
    elif current is answers and line.strip():
      answers[-1] = f"{answers[-1]} {line.strip()}".strip()   # an answer may wrap lines
  if not questions or not questions[0]:
    return Rejected("no_question")
  if not answers or not answers[0]:
    return Rejected("no_answer")
  if len(questions) > 1 or len(answers) > 1:
    return Rejected("multiple_pairs", f"{len(questions)} questions, {len(answers)} answers")
  return questions[0], answers[0]


def _is_causal(question: str) -> bool:
  toks = words(question)
  for i, t in enumerate(toks):
    if t == "why":
      return True
    if t == "how" and (i + 1 == len(toks) or toks[i + 1] not in _HOW_QUANTITY):
      return True
  return False


def _copies(answer: str, narrative_text: str, min_words: int) -> bool:
  ans = normalize(answer)
  nar = normalize(narrative_text)
  if ans and ans == nar:
    return True
  if len(ans.split()) >= min_words and f" {ans} " in f" {nar} ":
    return True
  for sentence in re.split(r"[.!?\n]+", narrative_text):
    sent = normalize(sentence)
    if len(sent.split()) >= min_words and f" {sent} " in f" {ans} ":
      return True
  return False


def _gives_away(a_words: list[str], q_words: list[str]) -> bool:
  """The answer's core (stop words trimmed from both ends) is a phrase of the question, and the
  question is not a choice ("... X or Y?")."""
  core = list(a_words)
  while core and core[0] in _STOP:
    core.pop(0)
  while core and core[-1] in _STOP:
    core.pop()
  if not core or "or" in q_words:
    return False
  n = len(core)
  return any(q_words[i:i + n] == core for i in range(len(q_words) - n + 1))


def check(reply: str, kind: str, narrative_text: str, limits: Limits) -> Accepted | Rejected:
  """Parses `reply` and applies the general and the kind-specific rules.

  Args:
    reply: the back-end's raw text.
    kind: "temporal" | "causal" | "shortqa".
    narrative_text: the text the prompt was built from (for the copy check).
    limits: length limits.
  """
  parsed = parse(reply)
  if isinstance(parsed, Rejected):
    return parsed
  question, answer = parsed
  if kind == "shortqa" and question.lower().startswith(SHORTQA_PREFIX.lower()):
    question = question[len(SHORTQA_PREFIX):].strip()
  q_words, a_words = words(question), words(answer)
  if not question.endswith("?"):
    return Rejected("question_not_a_question")
  if len(q_words) < limits.min_question_words:
    return Rejected("question_too_short", f"{len(q_words)} words")
  if len(q_words) > limits.max_question_words:
    return Rejected("question_too_long", f"{len(q_words)} words")
  if not a_words:
    return Rejected("no_answer")
  if len(a_words) > limits.max_answer_words:
    return Rejected("answer_too_long", f"{len(a_words)} words")
  if _META_WORDS.search(question.lower()) or _META_WORDS.search(answer.lower()):
    return Rejected("mentions_description")
  if _copies(answer, narrative_text, limits.copy_min_words):
    return Rejected("answer_copies_narrative")
  if _gives_away(a_words, q_words):
    return Rejected("answer_in_question")
  if kind == "temporal":
    if not ORDER_WORDS & set(q_words):
      return Rejected("temporal_no_order_word")
  elif kind == "causal":
    if not _is_causal(question):
      return Rejected("causal_not_why_or_how")
  elif kind == "shortqa":
    if len(a_words) > limits.shortqa_max_answer_words:
      return Rejected("shortqa_answer_too_long", f"{len(a_words)} words")
    # Short answers are targets like "blue" or "two", as in the QA sets they are scored against
    # (NExT-OE keeps punctuation in its exact-match types): LLM-style "Blue." loses its period.
    answer = answer.rstrip(" .!")
  else:
    raise ValueError(f"unknown kind {kind!r}")
  return Accepted(question, answer)
