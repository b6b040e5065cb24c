"""Captioning metrics (MSR-VTT, ActivityNet, S-MiT) with pycocoevalcap, the COCO caption evaluation code.

Same pipeline as `pycocoevalcap.eval.COCOEvalCap`: every reference and prediction goes through the
Stanford PTB tokenizer (lower-cases, splits, drops punctuation tokens), then BLEU-1..4, METEOR 1.5,
ROUGE-L and CIDEr-D score the tokenised text. pycocoevalcap's `Cider` class is CIDEr-D (Vedantam et al.:
clipped n-gram counts, Gaussian length penalty sigma=6, document frequencies from the references of the
evaluated set), the variant papers report as "CIDEr". SPICE is not computed (needs Stanford CoreNLP models
downloaded at run time). Scores are x100, as papers report them (e.g. MSR-VTT CIDEr 48.2).

Needs `java` on PATH (tokenizer and METEOR are jars shipped inside the pycocoevalcap wheel).
"""
from __future__ import annotations

import atexit
import shutil
import threading
from collections.abc import Hashable, Mapping, Sequence

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def _check_java() -> None:
  if shutil.which("java") is None:
    raise RuntimeError("pycocoevalcap needs `java` on PATH: `sudo apt-get install default-jre-headless` "
                       "(or run `make setup`).")


def ptb_tokenize(captions: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, list[str]]:
  """PTB-tokenises {id: [caption, ...]} with pycocoevalcap's tokenizer."""
  from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
  _check_java()
  return PTBTokenizer().tokenize({key: [{"caption": c} for c in caps] for key, caps in captions.items()})


_METEOR = None  # One METEOR JVM per process, see `meteor_scorer`.
_METEOR_LOCK = threading.Lock()


def _stop_meteor(meteor) -> None:
  """Meteor only stops its java process in __del__; stop it explicitly."""
  process = meteor.meteor_p
  if process.poll() is None:
    process.stdin.close()
    process.kill()
    process.wait()
  process.stdout.close()
  process.stderr.close()


def meteor_scorer():
  """pycocoevalcap's METEOR scorer, started once per process and stopped at exit.

  Starting it loads METEOR's paraphrase table into a JVM (5-15 s), so repeated evaluations share one.
  """
  global _METEOR
  from pycocoevalcap.meteor.meteor import Meteor
  with _METEOR_LOCK:
    if _METEOR is None or _METEOR.meteor_p.poll() is not None:  # not started, or the JVM died
      _check_java()
      _METEOR = Meteor()
      atexit.register(_stop_meteor, _METEOR)
    return _METEOR


def caption_metrics(references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str],
                    metrics: Sequence[str] = METRICS) -> dict[str, float]:
  """Corpus-level caption scores, x100.

  Args:
    references: {clip id: [reference caption, ...]} (at least one per clip; MSR-VTT has 20).
    predictions: {clip id: predicted caption}, the same ids.
    metrics: which of `METRICS` to compute (METEOR is the slowest: it starts a JVM with a paraphrase table).

  Returns:
    {metric name: score x100}.
  """
  unknown = set(metrics) - set(METRICS)
  if unknown:
    raise ValueError(f"Unknown caption metrics {sorted(unknown)}; known: {METRICS}.")
  if set(references) != set(predictions):
    missing, extra = set(references) - set(predictions), set(predictions) - set(references)
    raise ValueError(f"Prediction ids differ from reference ids: {len(missing)} missing "
                     f"(e.g. {sorted(map(str, missing))[:3]}), {len(extra)} extra "
                     f"(e.g. {sorted(map(str, extra))[:3]}).")
  if not references:
    raise ValueError("No captions to score.")
  empty = [key for key, refs in references.items() if not refs]
  if empty:
    raise ValueError(f"{len(empty)} clips have no reference caption, e.g. {empty[:3]}.")
  # One tokenizer call for both sides (one JVM start); keys are tagged to keep them apart.
  tokenized = ptb_tokenize({**{("ref", k): list(v) for k, v in references.items()},
                            **{("pred", k): [predictions[k]] for k in predictions}})
  gts = {k: tokenized[("ref", k)] for k in references}
  res = {k: tokenized[("pred", k)] for k in references}

  result: dict[str, float] = {}
  if any(m.startswith("BLEU") for m in metrics):
    from pycocoevalcap.bleu.bleu import Bleu
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(1, 5):
      if f"BLEU-{n}" in metrics:
        result[f"BLEU-{n}"] = 100.0 * float(bleu[n - 1])
  if "METEOR" in metrics:
    result["METEOR"] = 100.0 * float(meteor_scorer().compute_score(gts, res)[0])
  if "ROUGE-L" in metrics:
    from pycocoevalcap.rouge.rouge import Rouge
    result["ROUGE-L"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
  if "CIDEr" in metrics:
    from pycocoevalcap.cider.cider import Cider
    result["CIDEr"] = 100.0 * float(Cider().compute_score(gts, res)[0])
  return {m: result[m] for m in metrics}
