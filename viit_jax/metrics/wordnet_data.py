"""WordNet 3.0 for nltk from Debian's packages, with no nltk download, and the stopword lists.

nltk normally fetches WordNet with `nltk.download("wordnet")`; this project never downloads at run time.
Debian ships the same database, Princeton WordNet 3.0, in two packages:

  * `wordnet-base`         /usr/share/wordnet/{data,index}.{noun,verb,adj,adv}, *.exc, cntlist.rev
  * `wordnet-sense-index`  /usr/share/wordnet/index.sense

nltk's reader needs one more file that Debian does not ship, `lexnames` (the 45 lexicographer file names,
numbered 00-44; `data.adj` uses number 44, `adj.ppl`), which `install_wordnet` writes. nltk only opens files
under its data roots (the entries of `nltk.data.path`) and refuses files that resolve elsewhere (so a
symlink into /usr/share/wordnet is refused) or that another account could write; so the files are
*copied*, private to their owner (0644), into `<data dir>/corpora/wordnet/`, and the data dir is put first on
`nltk.data.path`. The default data dir is `<sys.prefix>/nltk_data` (one of nltk's own default roots, inside
the project venv) when it is writable, else `$XDG_CACHE_HOME/viit_jax/nltk_data`.

Usage: `wn = load_wordnet()` returns nltk's WordNet reader (version checked to be 3.0); installing is
idempotent (a size check per file, well under a millisecond when already installed).

Stopwords: nltk's stopwords corpus is a download as well, so the lists live here as constants.
"""
from __future__ import annotations

import functools
import os
import pathlib
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
  from nltk.corpus.reader.wordnet import WordNetCorpusReader

WORDNET_SOURCE_DIR = pathlib.Path("/usr/share/wordnet")
APT_PACKAGES = ("wordnet-base", "wordnet-sense-index")
WORDNET_VERSION = "3.0"

# Files nltk's WordNetCorpusReader opens, all shipped by the two Debian packages (lexnames is generated).
WORDNET_FILES = (
    "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.verb", "index.sense",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
    "cntlist.rev",
)

# The WordNet 3.0 lexicographer files, in file-number order 00..44 (WordNet's lexnames(5WN) man page).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)
# Third column of `lexnames`: the syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb).
_LEX_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

# NLTK's English stopword list (nltk_data `corpora/stopwords/english`, the classic 179-word version that
# nltk shipped 2018-2023), in its original order.
NLTK_ENGLISH_STOPWORDS = (
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "you're", "you've", "you'll",
    "you'd", "your", "yours", "yourself", "yourselves", "he", "him", "his", "himself", "she", "she's",
    "her", "hers", "herself", "it", "it's", "its", "itself", "they", "them", "their", "theirs",
    "themselves", "what", "which", "who", "whom", "this", "that", "that'll", "these", "those", "am", "is",
    "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did",
    "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at",
    "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after",
    "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again",
    "further", "then", "once", "here", "there", "when", "where", "why", "how", "all", "any", "both",
    "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same",
    "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "don't", "should", "should've",
    "now", "d", "ll", "m", "o", "re", "ve", "y", "ain", "aren", "aren't", "couldn", "couldn't", "didn",
    "didn't", "doesn", "doesn't", "hadn", "hadn't", "hasn", "hasn't", "haven", "haven't", "isn", "isn't",
    "ma", "mightn", "mightn't", "mustn", "mustn't", "needn", "needn't", "shan", "shan't", "shouldn",
    "shouldn't", "wasn", "wasn't", "weren", "weren't", "won", "won't", "wouldn", "wouldn't",
)

# The official NExT-OE evaluation (doc-doc/NExT-OE eval_oe.py) filters with "stopwords tailored for NExT-QA"
# (a stopwords.txt that is not in the public repository). The copy that lmms-eval ships next to its
# verbatim port of the NExT-OE metric (lmms_eval/tasks/nextqa/stopwords.csv) is the NLTK list above minus
# these 23 words, which carry the answer in NExT-QA (yes/no, counts, spatial and temporal relations):
NEXTQA_KEPT_WORDS = (
    "by", "against", "between", "before", "after", "above", "below", "up", "down", "in", "out", "on",
    "off", "over", "under", "once", "both", "few", "more", "no", "nor", "not", "same",
)
NEXTQA_STOPWORDS = frozenset(NLTK_ENGLISH_STOPWORDS) - frozenset(NEXTQA_KEPT_WORDS)


class WordNetMissingError(FileNotFoundError):
  """The Debian WordNet files are not installed."""


def default_data_dir() -> pathlib.Path:
  """`<sys.prefix>/nltk_data` if it can be written, else `$XDG_CACHE_HOME/viit_jax/nltk_data`."""
  prefix_dir = pathlib.Path(sys.prefix) / "nltk_data"
  if _writable(prefix_dir):
    return prefix_dir
  cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
  return cache / "viit_jax" / "nltk_data"


def _writable(path: pathlib.Path) -> bool:
  """Whether `path` exists as a writable dir, or could be created under a writable ancestor."""
  for candidate in (path, *path.parents):
    if candidate.exists():
      return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
  return False


def lexnames_text() -> str:
  """Contents of WordNet 3.0's `lexnames` file: "<NN>\\t<name>\\t<category>" per line."""
  return "".join(f"{i:02d}\t{name}\t{_LEX_CATEGORY[name.split('.')[0]]}\n"
                 for i, name in enumerate(LEXNAMES))


def _is_installed(corpus_dir: pathlib.Path, source_dir: pathlib.Path) -> bool:
  try:
    for name in WORDNET_FILES:
      if (corpus_dir / name).stat().st_size != (source_dir / name).stat().st_size:
        return False
    return (corpus_dir / "lexnames").read_text() == lexnames_text()
  except OSError:
    return False


def install_wordnet(data_dir: pathlib.Path | None = None,
                    source_dir: pathlib.Path = WORDNET_SOURCE_DIR) -> pathlib.Path:
  """Copies WordNet 3.0 into `<data_dir>/corpora/wordnet` (idempotent, atomic) and returns that dir.

  Raises:
    WordNetMissingError: if a file of the Debian packages is missing from `source_dir`.
  """
  data_dir = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
  source_dir = pathlib.Path(source_dir)
  missing = [name for name in WORDNET_FILES if not (source_dir / name).is_file()]
  if missing:
    raise WordNetMissingError(
        f"WordNet 3.0 files missing from {source_dir}: {', '.join(missing)}. Install the Debian "
        f"packages: `sudo apt-get install {' '.join(APT_PACKAGES)}` (or run `make setup`).")
  corpus_dir = data_dir / "corpora" / "wordnet"
  if _is_installed(corpus_dir, source_dir):
    return corpus_dir
  corpus_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
  # Build next to the target, then rename, so a concurrent reader never sees a half-written corpus.
  tmp_dir = pathlib.Path(tempfile.mkdtemp(prefix=".wordnet-", dir=corpus_dir.parent))
  try:
    tmp_dir.chmod(0o755)
    for name in WORDNET_FILES:
      shutil.copyfile(source_dir / name, tmp_dir / name)
      (tmp_dir / name).chmod(0o644)
    (tmp_dir / "lexnames").write_text(lexnames_text())
    (tmp_dir / "lexnames").chmod(0o644)
    (tmp_dir / "README").write_text(
        f"WordNet {WORDNET_VERSION} copied from {source_dir} (Debian {' + '.join(APT_PACKAGES)}) "
        "by viit_jax.metrics.wordnet_data; lexnames generated.\n")
    (tmp_dir / "README").chmod(0o644)
    if corpus_dir.exists():
      stale = corpus_dir.with_name(f".wordnet-stale-{os.getpid()}")
      corpus_dir.rename(stale)
      shutil.rmtree(stale, ignore_errors=True)
    try:
      tmp_dir.rename(corpus_dir)
    except OSError:  # Another process won the race; use its copy if it is complete.
      if not _is_installed(corpus_dir, source_dir):
        raise
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  return corpus_dir


@functools.lru_cache(maxsize=None)
def load_wordnet(data_dir: pathlib.Path | None = None) -> "WordNetCorpusReader":
  """Installs (if needed) and returns nltk's WordNet 3.0 reader, `nltk.corpus.wordnet`.

  The data dir is put first on `nltk.data.path`, so nltk's global `wordnet` loader resolves to this copy
  unless it was already loaded from elsewhere (then its version must still be 3.0).
  """
  import nltk  # Heavy import, kept local.

  data_dir = pathlib.Path(data_dir) if data_dir is not None else default_data_dir()
  install_wordnet(data_dir)
  root = str(data_dir)
  if root in nltk.data.path:
    nltk.data.path.remove(root)
  nltk.data.path.insert(0, root)
  from nltk.corpus import wordnet

  version = wordnet.get_version()
  if version != WORDNET_VERSION:
    raise RuntimeError(f"nltk loaded WordNet {version} from {wordnet.root}, expected "
                       f"{WORDNET_VERSION} from {data_dir}.")
  return wordnet
