"""NExT-OE (open-ended NExT-QA) WUPS, following the benchmark's official evaluation.

The official code is doc-doc/NExT-OE (`eval_oe.py`, `metrics.py`) run with nltk 3.3 and pywsd 1.2.4.
What it does, and what this module does the same way:

1. Normalise the prediction and every reference answer (`normalize_answer`, the official `remove_stop`):
   pywsd's `lemmatize_sentence` = tokenise (punkt sentence split + Treebank word tokeniser), POS-tag,
   lower-case each token and lemmatise it with the WordNet lemmatiser under that POS; if the lemma is not
   in WordNet, fall back to its Porter stem when the stem is, else keep the word. Then drop stopwords
   ("stopwords tailored for NExT-QA", `wordnet_data.NEXTQA_STOPWORDS`) and join with spaces.
2. Types DB (binary) and DC (count): score 1 if the normalised prediction equals a normalised reference,
   else 0, at both thresholds.
3. Other types: `get_wups(P, T, a)` re-tokenises both strings and returns
   `min(wups(P, T, a), wups(T, P, a))`, where `wups(X, Y, a)` is the product over words x of X of
   `max_y wup(x, y, a)`, skipping words whose max is 0, and 0 if no word contributed.
4. `wup(x, y, a)`: 1 if the strings are equal; else the Wu-Palmer similarity of the FIRST synset of each
   word (`wordnet.synsets(word)[0]`, any part of speech, nouns first; 0 if either word has none; None -> 0),
   times 0.1 if it is below the threshold a.
5. WUPS@0 and WUPS@0.9 are means over questions, x100, per type (CW CH TN TC DL DB DC DO; TP is folded into
   TN), per group (C = CW CH, T = TN TC, D = DL DB DC DO) and overall. With extra reference answers
   (`add_reference_answer_test.json`), a question scores the max over its references.

Deviations (nothing here is downloaded; WordNet 3.0 comes from Debian, see `wordnet_data`):
- POS tagging: the official lemmatiser tags tokens with nltk's averaged-perceptron tagger, whose model is an
  nltk download. Without it (the default, `pos_tagger=None`) each token gets the part of speech under which
  its WordNet lemmas have the highest SemCor tag count (`Lemma.count()`, from `cntlist.rev`; ties and
  all-zero counts -> noun), i.e. the most frequent POS of the word out of context. So "playing" -> "play"
  and "dogs" -> "dog" as with the tagger, but a noun use of an -ing form ("building") becomes its verb
  ("build"). Pass `pos_tagger=nltk.pos_tag` where its model is installed to reproduce the official tagging.
- Sentence splitting: punkt without the trained English parameters (also a download), so abbreviations
  such as "Mr." may split differently. Answers are a few words, so this almost never matters.
- pywsd 1.2.4's Treebank tokeniser has three extra quote/period regexes; nltk's current tokeniser is used.
- nltk >= 3.6 changed two WordNet routines that the score depends on; the nltk 3.3 versions the official
  numbers were produced with are re-implemented here: (a) `wup_similarity` adds the simulated root only when
  the FIRST synset is a verb (nltk >= 3.6: when either synset is a verb, adjective or adverb), so a
  noun-vs-verb pair scores 0 in one direction and e.g. large.a.01 vs small.a.01 scores 0, not 0.5;
  (b) morphy (used by both the lemmatiser and `synsets`) keeps applying the suffix rules until a form is
  found ("dogss" -> "dogs" -> "dog"), where the installed nltk stops after one round.
- The official code computes per-type means over all eight types and fails on a type with no question;
  here absent types and groups are left out of the result.
- Normalised answers keep punctuation tokens ("yes ." != "yes" for DB/DC), exactly as the official code does;
  stripping trailing punctuation from model outputs is up to the caller.

Golden number: `wup("dog", "cat") == 0.8571...` (dog.n.01 vs cat.n.01, WordNet 3.0).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

from viit_jax.metrics import wordnet_data

QUESTION_TYPES = ("CW", "CH", "TN", "TC", "DL", "DB", "DC", "DO")
GROUPS = {"C": ("CW", "CH"), "T": ("TN", "TC"), "D": ("DL", "DB", "DC", "DO")}
EXACT_MATCH_TYPES = frozenset({"DB", "DC"})
TYPE_ALIASES = {"TP": "TN"}  # The official evaluation folds TP (temporal previous) into TN.
THRESHOLDS = (0.0, 0.9)

# A tagger in `nltk.pos_tag`'s form: tokens -> [(token, Penn Treebank tag)].
PosTagger = Callable[[list[str]], list[tuple[str, str]]]

_POS_ORDER = ("n", "v", "a", "r")  # nltk's POS_LIST: the order `wordnet.synsets(word)` lists synsets in.
_PENN_TO_WORDNET = {"NN": "n", "JJ": "a", "VB": "v", "RB": "r"}  # pywsd's penn2morphy, by tag prefix.


@functools.lru_cache(maxsize=None)
def _wn():
  return wordnet_data.load_wordnet()


@functools.lru_cache(maxsize=None)
def _sentence_splitter():
  from nltk.tokenize.punkt import PunktSentenceTokenizer
  return PunktSentenceTokenizer()  # Untrained: the trained English model is a download.


@functools.lru_cache(maxsize=None)
def _word_tokenizer():
  from nltk.tokenize import NLTKWordTokenizer
  return NLTKWordTokenizer()


@functools.lru_cache(maxsize=None)
def _stemmer():
  from nltk.stem import PorterStemmer
  return PorterStemmer()


def tokenize(text: str) -> list[str]:
  """nltk's `word_tokenize` (sentences, then Treebank words), with an untrained punkt splitter."""
  return [token for sentence in _sentence_splitter().tokenize(text)
          for token in _word_tokenizer().tokenize(sentence)]


# ---------------------------------------------------------------------------------------------------------
# WordNet look-ups with nltk 3.3 semantics.


@functools.lru_cache(maxsize=1 << 16)
def _morphy(form: str, pos: str) -> tuple[str, ...]:
  """nltk 3.3 `WordNetCorpusReader._morphy`: base forms of `form` that WordNet lists under `pos`."""
  wn = _wn()
  exceptions = wn._exception_map[pos]  # pylint: disable=protected-access
  substitutions = wn.MORPHOLOGICAL_SUBSTITUTIONS[pos]
  index = wn._lemma_pos_offset_map  # pylint: disable=protected-access

  def apply_rules(forms: list[str]) -> list[str]:
    return [f[:-len(old)] + new for f in forms for old, new in substitutions if f.endswith(old)]

  def filter_forms(forms: list[str]) -> list[str]:
    result: list[str] = []
    for f in forms:
      if f in index and pos in index[f] and f not in result:
        result.append(f)
    return result

  if form in exceptions:
    return tuple(filter_forms([form] + exceptions[form]))
  forms = apply_rules([form])
  results = filter_forms([form] + forms)
  while not results and forms:  # Dropped in later nltk; the official numbers used nltk 3.3.
    forms = apply_rules(forms)
    results = filter_forms(forms)
  return tuple(results)


def _synsets(word: str, pos: str | None = None) -> list:
  """nltk 3.3 `wordnet.synsets(word, pos)`: all synsets, nouns then verbs, adjectives, adverbs."""
  wn = _wn()
  index = wn._lemma_pos_offset_map  # pylint: disable=protected-access
  word = word.lower()
  return [wn.synset_from_pos_and_offset(p, offset)
          for p in ((pos,) if pos else _POS_ORDER)
          for form in _morphy(word, p)
          for offset in index[form].get(p, [])]


@functools.lru_cache(maxsize=1 << 16)
def first_synset(word: str):
  """`wordnet.synsets(word)[0]` (any part of speech) or None."""
  wn = _wn()
  index = wn._lemma_pos_offset_map  # pylint: disable=protected-access
  word = word.lower()
  for p in _POS_ORDER:
    for form in _morphy(word, p):
      offsets = index[form].get(p, [])
      if offsets:
        return wn.synset_from_pos_and_offset(p, offsets[0])
  return None


def wup_similarity(synset1, synset2) -> float | None:
  """nltk 3.3 `Synset.wup_similarity(synset2)` (simulate_root=True), None when no subsumer exists.

  nltk 3.3 simulates a root only when `synset1` needs one, i.e. is a verb (in WordNet 3.0 nouns share the
  root entity.n.01, and nltk 3.3's `_needs_root` is falsy for adjectives and adverbs). The rest of the
  computation is nltk's, unchanged since 3.3.
  """
  simulate_root = synset1.pos() == "v"
  subsumers = synset1.lowest_common_hypernyms(synset2, simulate_root=simulate_root, use_min_depth=True)
  if not subsumers:
    return None
  subsumer = synset1 if synset1 in subsumers else subsumers[0]
  depth = subsumer.max_depth() + 1
  len1 = synset1.shortest_path_distance(subsumer, simulate_root=simulate_root)
  len2 = synset2.shortest_path_distance(subsumer, simulate_root=simulate_root)
  if len1 is None or len2 is None:
    return None
  return (2.0 * depth) / (len1 + depth + len2 + depth)


@functools.lru_cache(maxsize=1 << 18)
def wup(word1: str, word2: str, threshold: float = 0.0) -> float:
  """Official word similarity: 1 if equal, else first-synset Wu-Palmer, x0.1 if below `threshold`."""
  if word1 == word2:
    return 1.0
  synset1 = first_synset(word1)
  if synset1 is None:
    return 0.0
  synset2 = first_synset(word2)
  if synset2 is None:
    return 0.0
  similarity = wup_similarity(synset1, synset2)
  if similarity is None:
    similarity = 0.0
  if similarity < threshold:
    similarity *= 0.1
  return similarity


def wups(words1: Sequence[str], words2: Sequence[str], threshold: float) -> float:
  """Product over words1 of the best `wup` against words2; words with best 0 are skipped; 0 if none count."""
  product, contributed = 1.0, False
  for w1 in words1:
    best = max((wup(w1, w2, threshold) for w2 in words2), default=0.0)
    if best == 0:
      continue
    product *= best
    contributed = True
  return product if contributed else 0.0


def get_wups(prediction: str, truth: str, threshold: float) -> float:
  """Symmetric WUPS of two normalised answers: min of both directions."""
  pred_words, truth_words = tokenize(prediction), tokenize(truth)
  return min(wups(pred_words, truth_words, threshold), wups(truth_words, pred_words, threshold))


# ---------------------------------------------------------------------------------------------------------
# Normalisation (pywsd's lemmatize_sentence + stopword removal).


def _penn_to_wordnet(tag: str) -> str:
  return _PENN_TO_WORDNET.get(tag[:2], "")


@functools.lru_cache(maxsize=1 << 16)
def most_frequent_pos(word: str) -> str:
  """The POS ('n', 'v', 'a', 'r') whose WordNet lemmas of `word` have the largest SemCor count.

  Stands in for the POS tagger (see the module docstring); ties and all-zero counts go to the earlier POS in
  n, v, a, r, so unknown words are nouns, like pywsd's default.
  """
  best_pos, best_count = "n", 0
  for pos in _POS_ORDER:
    count = 0
    for form in _morphy(word, pos):
      for synset in _synsets(form, pos):
        for lemma in synset.lemmas():
          if lemma.name().lower() == form:
            count += lemma.count()
    if count > best_count:
      best_pos, best_count = pos, count
  return best_pos


@functools.lru_cache(maxsize=1 << 16)
def lemmatize(word: str, pos: str) -> str:
  """pywsd's `lemmatize(word, pos)`: WordNet lemma if in WordNet, else Porter stem if in WordNet, else word."""
  forms = _morphy(word, pos)
  lemma = min(forms, key=len) if forms else word  # nltk's WordNetLemmatizer.lemmatize.
  if first_synset(lemma) is not None:
    return lemma
  stem = _stemmer().stem(word)
  return stem if first_synset(stem) is not None else word


def lemmatize_sentence(text: str, pos_tagger: PosTagger | None = None) -> list[str]:
  """pywsd's `lemmatize_sentence`: lower-cased lemmas of the tokens of `text`."""
  tokens = tokenize(text)
  if pos_tagger is None:
    return [lemmatize(token.lower(), most_frequent_pos(token.lower())) for token in tokens]
  lemmas = []
  for token, tag in pos_tagger(tokens):
    word = token.lower()
    pos = _penn_to_wordnet(tag) or _penn_to_wordnet(pos_tagger([word])[0][1]) or "n"
    lemmas.append(lemmatize(word, pos))
  return lemmas


def normalize_answer(text: str, pos_tagger: PosTagger | None = None) -> str:
  """The official `remove_stop`: lemmatised, lower-cased tokens without NExT-QA stopwords, space-joined."""
  return " ".join(w for w in lemmatize_sentence(text, pos_tagger)
                  if w not in wordnet_data.NEXTQA_STOPWORDS)


# ---------------------------------------------------------------------------------------------------------
# Scoring.


def canonical_type(qtype: str) -> str:
  """Question type with TP folded into TN; raises ValueError on an unknown type."""
  qtype = TYPE_ALIASES.get(qtype, qtype)
  if qtype not in QUESTION_TYPES:
    raise ValueError(f"Unknown NExT-QA question type {qtype!r}; expected one of {QUESTION_TYPES} or TP.")
  return qtype


def score_question(prediction: str, references: Sequence[str], qtype: str,
                   pos_tagger: PosTagger | None = None) -> tuple[float, float]:
  """(WUPS@0, WUPS@0.9) in [0, 1] of one answer against its references (max over references)."""
  if not references:
    raise ValueError("A question needs at least one reference answer.")
  qtype = canonical_type(qtype)
  pred = normalize_answer(prediction, pos_tagger)
  refs = [normalize_answer(r, pos_tagger) for r in references]
  if qtype in EXACT_MATCH_TYPES:
    hit = float(any(pred == ref for ref in refs))
    return hit, hit
  return (max(get_wups(pred, ref, THRESHOLDS[0]) for ref in refs),
          max(get_wups(pred, ref, THRESHOLDS[1]) for ref in refs))


def nextoe_wups(predictions: Sequence[str], references: Sequence[Sequence[str]],
                qtypes: Sequence[str], pos_tagger: PosTagger | None = None) -> dict[str, float]:
  """NExT-OE WUPS over a set of questions.

  Args:
    predictions: one predicted answer per question.
    references: per question, the reference answers: the `answer` column first, then any extra
      references (`add_reference_answer_<split>.json`).
    qtypes: per question, its type (CW CH TN TP TC DL DB DC DO).
    pos_tagger: optional tagger in `nltk.pos_tag`'s form (see the module docstring).

  Returns:
    "WUPS@0" and "WUPS@0.9" overall and, for each type and group with questions, "WUPS@0/<key>" and
    "WUPS@0.9/<key>" (all x100), plus "count" and "count/<key>".
  """
  if not len(predictions) == len(references) == len(qtypes):
    raise ValueError(f"Lengths differ: {len(predictions)} predictions, {len(references)} reference "
                     f"lists, {len(qtypes)} types.")
  if not predictions:
    raise ValueError("No questions to score.")
  sums: dict[str, list[float]] = {}
  for prediction, refs, qtype in zip(predictions, references, qtypes):
    qtype = canonical_type(qtype)
    s0, s9 = score_question(prediction, refs, qtype, pos_tagger)
    for key in (qtype, qtype[0], "all"):
      acc = sums.setdefault(key, [0.0, 0.0, 0])
      acc[0] += s0
      acc[1] += s9
      acc[2] += 1
  result: dict[str, float] = {}
  for key in ("all", *QUESTION_TYPES, *GROUPS):
    if key not in sums:
      continue
    s0, s9, n = sums[key]
    suffix = "" if key == "all" else f"/{key}"
    result[f"WUPS@0{suffix}"] = 100.0 * s0 / n
    result[f"WUPS@0.9{suffix}"] = 100.0 * s9 / n
    result[f"count{suffix}"] = float(n)
  assert all(math.isfinite(v) for v in result.values())
  return result
