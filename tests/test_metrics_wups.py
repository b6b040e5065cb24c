"""NExT-OE WUPS and the Debian WordNet 3.0 set-up for nltk."""
import pathlib

import pytest

from viit_jax.metrics import wordnet_data
from viit_jax.metrics import wups as W


# ----------------------------------------------------------------------------------------- WordNet set-up


def test_load_wordnet_is_debian_wordnet_30():
  wn = wordnet_data.load_wordnet()
  assert wn.get_version() == "3.0"
  root = pathlib.Path(str(wn.root))
  assert (root / "lexnames").read_text() == wordnet_data.lexnames_text()
  assert wn.synsets("dog")[0].name() == "dog.n.01"
  assert wn.synset("dog.n.01").lemmas()[0].count() > 0  # cntlist.rev + sense keys (needs lexnames)


def test_install_wordnet_copies_idempotently(tmp_path, monkeypatch):
  corpus = wordnet_data.install_wordnet(tmp_path)
  assert corpus == tmp_path / "corpora" / "wordnet"
  for name in wordnet_data.WORDNET_FILES:
    copied = corpus / name
    assert copied.is_file() and not copied.is_symlink()
    assert copied.stat().st_mode & 0o022 == 0  # nltk refuses group/world-writable data
  lines = (corpus / "lexnames").read_text().splitlines()
  assert len(lines) == 45
  assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
  assert lines[43] == "43\tverb.weather\t2" and lines[44] == "44\tadj.ppl\t3"
  mtime = (corpus / "data.noun").stat().st_mtime_ns
  assert wordnet_data.install_wordnet(tmp_path) == corpus
  assert (corpus / "data.noun").stat().st_mtime_ns == mtime  # second call copies nothing
  # nltk itself reads the fresh copy (a reader of its own, so the shared global one is untouched).
  import nltk
  from nltk.corpus.reader.wordnet import WordNetCorpusReader
  monkeypatch.setattr(nltk.data, "path", [str(tmp_path)] + list(nltk.data.path))
  with pytest.warns(UserWarning, match="multilingual"):
    reader = WordNetCorpusReader(str(corpus), None)
  assert reader.get_version() == "3.0"
  assert reader.synset("dog.n.01").lexname() == "noun.animal"
  assert reader.synsets("avenged", pos="a")[0].lexname() == "adj.ppl"  # lexicographer file 44


def test_install_wordnet_names_the_apt_packages(tmp_path):
  with pytest.raises(wordnet_data.WordNetMissingError, match="wordnet-base wordnet-sense-index"):
    wordnet_data.install_wordnet(tmp_path / "data", source_dir=tmp_path / "no-wordnet")


def test_stopword_lists():
  assert len(wordnet_data.NLTK_ENGLISH_STOPWORDS) == len(set(wordnet_data.NLTK_ENGLISH_STOPWORDS)) == 179
  assert len(wordnet_data.NEXTQA_STOPWORDS) == 156
  for kept in ("no", "not", "before", "after", "up", "down", "in", "on"):
    assert kept in wordnet_data.NLTK_ENGLISH_STOPWORDS and kept not in wordnet_data.NEXTQA_STOPWORDS
  assert {"the", "a", "is", "he", "to"} <= wordnet_data.NEXTQA_STOPWORDS


# ------------------------------------------------------------------------------------------- similarity


def test_golden_dog_cat():
  assert W.first_synset("dog").name() == "dog.n.01"
  assert W.first_synset("cat").name() == "cat.n.01"
  assert W.wup("dog", "cat") == pytest.approx(0.857, abs=5e-4)
  assert W.wup("dog", "cat") == pytest.approx(12 / 14)  # 2 * depth(carnivore) / (depth(dog) + depth(cat))


def test_threshold_09():
  # Below 0.9 the similarity is down-weighted by 0.1; 0.9 itself is not below the threshold.
  assert W.wup("dog", "cat", 0.9) == pytest.approx(0.1 * 12 / 14)
  assert W.wup("dog", "puppy", 0.0) == pytest.approx(26 / 29)
  assert W.wup("dog", "puppy", 0.9) == pytest.approx(0.1 * 26 / 29)
  assert W.wup("guitar", "piano", 0.0) == W.wup("guitar", "piano", 0.9) == 0.9
  assert W.wup("walk", "walk", 0.9) == 1.0  # equal strings: 1 whatever the threshold


def test_word_outside_wordnet():
  assert W.first_synset("xyzzyq") is None
  assert W.wup("xyzzyq", "dog") == W.wup("dog", "xyzzyq") == 0.0
  # An unknown word contributes nothing (its max is 0 and it is skipped) ...
  assert W.get_wups("xyzzyq dog", "dog", 0.0) == 1.0
  # ... and if no word contributes, the score is 0.
  assert W.get_wups("xyzzyq", "dog", 0.0) == 0.0
  assert W.get_wups("xyzzyq", "xyzzyq", 0.0) == 1.0  # equal strings still match


def test_nltk33_similarity_semantics():
  # nltk 3.3 simulates a root only when the first synset is a verb, so verb->noun scores but noun->verb
  # does not, and different adjectives never share a subsumer (nltk >= 3.6 would give 0.5 here).
  sit, dog = W.first_synset("sit"), W.first_synset("dog")
  assert (sit.pos(), dog.pos()) == ("v", "n")
  assert W.wup("sit", "dog") > 0 and W.wup("dog", "sit") == 0.0
  happy, sad = W.first_synset("happy"), W.first_synset("sad")
  assert (happy.name(), sad.name()) == ("happy.a.01", "sad.a.01")
  assert W.wup("happy", "sad") == 0.0
  assert happy.wup_similarity(sad) == pytest.approx(0.5)  # the installed nltk's own answer differs
  # nltk 3.3's morphy keeps applying suffix rules: "dogss" -> "dogs" -> "dog".
  assert W.first_synset("dogss").name() == "dog.n.01"


def test_wups_product_and_min():
  # wups(P, T) = product over P of best match; score = min of both directions.
  p_to_t = W.wup("dog", "cat") * 1.0  # dog -> cat, play -> play
  assert W.get_wups("dog play", "cat play", 0.0) == pytest.approx(p_to_t)
  # "cat" alone: cat -> dog only; reverse: dog -> cat and play -> best of (play vs cat).
  reverse = W.wup("dog", "cat") * W.wup("play", "cat")
  assert W.get_wups("cat", "dog play", 0.0) == pytest.approx(min(W.wup("cat", "dog"), reverse))


# ------------------------------------------------------------------------------------------ normalising


def test_normalize_answer():
  assert W.normalize_answer("He is playing the guitar.") == "play guitar ."
  assert W.normalize_answer("Dogs") == "dog"
  assert W.normalize_answer("the man walked away") == "man walk away"
  assert W.normalize_answer("before he left").startswith("before ")  # NExT-QA keeps temporal words
  assert W.normalize_answer("no") == "no"
  assert W.normalize_answer("the") == ""


def test_pos_tagger_hook():
  # Without a tagger "building" takes its most frequent POS (verb) -> "build"; a tagger saying noun keeps it.
  assert W.normalize_answer("the building") == "build"
  tags = {"the": "DT", "building": "NN", "tall": "JJ"}
  tagger = lambda tokens: [(t, tags.get(t.lower(), "XX")) for t in tokens]
  assert W.normalize_answer("the building", pos_tagger=tagger) == "building"


# -------------------------------------------------------------------------------------------- scoring


def test_exact_match_scores_one():
  assert W.score_question("The man.", ["man"], "CW") == (1.0, 1.0)  # "man ." vs "man": "." is skipped
  assert W.score_question("playing guitar", ["play the guitar"], "CH") == (1.0, 1.0)


def test_db_dc_exact_match_types():
  # Similar words score under WUPS but not under the exact-match types.
  s0, s9 = W.score_question("three", ["two"], "CW")
  assert 0 < s0 < 1 and s9 == pytest.approx(0.1 * s0)
  assert W.score_question("three", ["two"], "DC") == (0.0, 0.0)
  assert W.score_question("Two", ["two"], "DC") == (1.0, 1.0)
  assert W.score_question("yes", ["no"], "DB") == (0.0, 0.0)
  assert W.score_question("No", ["no"], "DB") == (1.0, 1.0)


def test_extra_reference_answers_take_the_max():
  one = W.score_question("puppy", ["cat"], "DO")
  both = W.score_question("puppy", ["cat", "dog"], "DO")
  assert both == (pytest.approx(W.wup("puppy", "dog")), pytest.approx(0.1 * W.wup("puppy", "dog")))
  assert both[0] > one[0]
  assert W.score_question("yes", ["no", "yes"], "DB") == (1.0, 1.0)


def test_nextoe_wups_aggregation():
  rows = [  # (prediction, references, type)
      ("dog", ["dog"], "CW"),          # 1, 1
      ("cat", ["dog"], "CH"),          # w, 0.1 w
      ("sit", ["sit"], "TP"),          # folded into TN: 1, 1
      ("guitar", ["piano"], "TC"),     # 0.9, 0.9
      ("yes", ["no"], "DB"),           # 0, 0
      ("two", ["two"], "DC"),          # 1, 1
  ]
  w = W.wup("cat", "dog")
  result = W.nextoe_wups(*zip(*rows))
  assert result["WUPS@0/CW"] == 100.0 and result["WUPS@0.9/CW"] == 100.0
  assert result["WUPS@0/CH"] == pytest.approx(100 * w)
  assert result["WUPS@0.9/CH"] == pytest.approx(10 * w)
  assert result["WUPS@0/TN"] == 100.0 and result["count/TN"] == 1.0 and "WUPS@0/TP" not in result
  assert result["WUPS@0/C"] == pytest.approx(100 * (1 + w) / 2)
  assert result["WUPS@0/T"] == pytest.approx(100 * (1 + 0.9) / 2)
  assert result["WUPS@0/D"] == pytest.approx(50.0)
  assert "WUPS@0/DL" not in result and "WUPS@0/DO" not in result  # no such questions
  assert result["WUPS@0"] == pytest.approx(100 * (1 + w + 1 + 0.9 + 0 + 1) / 6)
  assert result["WUPS@0.9"] == pytest.approx(100 * (1 + 0.1 * w + 1 + 0.9 + 0 + 1) / 6)
  assert result["count"] == 6.0


def test_bad_inputs():
  with pytest.raises(ValueError, match="question type"):
    W.nextoe_wups(["a"], [["a"]], ["XX"])
  with pytest.raises(ValueError, match="Lengths"):
    W.nextoe_wups(["a", "b"], [["a"]], ["CW"])
  with pytest.raises(ValueError, match="reference"):
    W.score_question("a", [], "CW")
