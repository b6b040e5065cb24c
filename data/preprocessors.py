"""tf.data preprocessors of the seqio tasks, and the model batch builder.

Task side: the raw examples of data.tfds_builders (frames + data-set fields) are turned into
{"frames": uint8[T,H,W,3], "prefix": str, "suffix": str, ...evaluation fields} here, then
seqio.preprocessors.tokenize turns prefix/suffix into int32 tokens (keeping the text as
"prefix_pretokenized"/"suffix_pretokenized").

Model side: `batch_for_model` follows the VLM sequence convention
(PaliGemma's): tokens = [BOS + prefix + "\\n" | suffix + EOS], padded with 0 to `seq_len`:

  mask_ar    0 on BOS, prefix and the "\\n" separator (full attention), 1 on suffix, EOS and
             padding (causal part);
  mask_loss  1 on suffix tokens and EOS, 0 elsewhere;
  mask_input 1 on every real token, 0 on padding.

Too long sequences are cut at `seq_len` from the end (suffix and EOS go first, as big_vision
does); an example whose prefix alone fills `seq_len` keeps no loss token.
"""
from __future__ import annotations

import ctypes
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np

import seqio
import tensorflow as tf

CAPTION_PROMPT = "Generate the alt-text:"
QA_PROMPT = "Answer in en:"
SEPARATOR = "\n"

Example = dict[str, tf.Tensor]


# ----------------------------------------------------------------------------------------------
# Task preprocessors: raw example -> {"frames", "prefix", "suffix", ...}.


@seqio.map_over_dataset(num_seeds=1)
def _random_caption(ex: Example, seed: tf.Tensor, key: str) -> Example:
  n = tf.shape(ex[key])[0]
  i = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=n, dtype=tf.int32)
  return {**ex, "suffix": ex[key][i]}


def caption_from_list(ds: tf.data.Dataset, *, key: str, pick: Literal["first", "random"],
                      prompt: str = CAPTION_PROMPT) -> tf.data.Dataset:
  """prefix = prompt, suffix = one of ex[key] (str[N]); ex[key] is kept as "references".

  pick="first" (evaluation: deterministic target) or "random" (training: a caption drawn per
  example with seqio's seeded stateless RNG).
  """
  ds = ds.map(lambda ex: {**ex, "references": ex[key], "prefix": tf.constant(prompt)},
              num_parallel_calls=tf.data.AUTOTUNE)
  if pick == "random":
    return _random_caption(ds, key=key)  # pylint: disable=no-value-for-parameter
  if pick != "first":
    raise ValueError(f"pick must be 'first' or 'random', got {pick!r}")
  return ds.map(lambda ex: {**ex, "suffix": ex[key][0]}, num_parallel_calls=tf.data.AUTOTUNE)


def caption_from_text(ds: tf.data.Dataset, *, key: str, prompt: str = CAPTION_PROMPT
                      ) -> tf.data.Dataset:
  """prefix = prompt, suffix = ex[key] (a string), references = [ex[key]]."""
  return ds.map(lambda ex: {**ex, "prefix": tf.constant(prompt), "suffix": ex[key],
                            "references": tf.reshape(ex[key], [1])},
                num_parallel_calls=tf.data.AUTOTUNE)


def flatten_nextqa(ds: tf.data.Dataset) -> tf.data.Dataset:
  """One example per question from the per-video NExT-QA examples.

  Out: {"frames", "video_id", "qid": int32, "key": "<video>_<qid>", "question", "answer",
  "type", "answers": str[K] (answer first, then extra reference answers)}.
  """
  def per_video(ex: Example) -> tf.data.Dataset:
    qa = ex["qa"]
    n = tf.shape(qa["qid"])[0]
    frames = tf.repeat(ex["frames"][None], n, axis=0)
    video = tf.repeat(ex["video_id"][None], n, axis=0)
    return tf.data.Dataset.from_tensor_slices({
        "frames": frames, "video_id": video, "qid": qa["qid"], "question": qa["question"],
        "answer": qa["answer"], "extra_answers": qa["extra_answers"], "type": qa["type"]})

  def per_question(ex: Example) -> Example:
    extra = tf.strings.split(ex.pop("extra_answers"), "|")
    extra = tf.boolean_mask(extra, tf.strings.length(extra) > 0)
    key = tf.strings.join([ex["video_id"], tf.strings.as_string(ex["qid"])], separator="_")
    return {**ex, "key": key, "answers": tf.concat([ex["answer"][None], extra], axis=0)}

  return ds.flat_map(per_video).map(per_question, num_parallel_calls=tf.data.AUTOTUNE)


def qa_prompt(ds: tf.data.Dataset, *, prompt: str = QA_PROMPT) -> tf.data.Dataset:
  """prefix = "Answer in en: <question>", suffix = answer."""
  return ds.map(lambda ex: {**ex, "prefix": tf.strings.join([prompt, ex["question"]],
                                                            separator=" "),
                            "suffix": ex["answer"]}, num_parallel_calls=tf.data.AUTOTUNE)


def retrieval_text(ds: tf.data.Dataset, *, prompt: str = CAPTION_PROMPT) -> tf.data.Dataset:
  """1k-A pairs: text = suffix = the one sentence; prefix = the caption prompt."""
  return ds.map(lambda ex: {**ex, "text": ex["captions"][0], "prefix": tf.constant(prompt),
                            "suffix": ex["captions"][0]}, num_parallel_calls=tf.data.AUTOTUNE)


def check_frames(ds: tf.data.Dataset, *, num_frames: int, res: int) -> tf.data.Dataset:
  """Pins the static shape of "frames" to uint8[num_frames, res, res, 3] (fails loudly if not)."""
  return ds.map(lambda ex: {**ex, "frames": tf.ensure_shape(ex["frames"],
                                                            [num_frames, res, res, 3])},
                num_parallel_calls=tf.data.AUTOTUNE)


def flatten_captions(ds: tf.data.Dataset, *, key: str, prompt: str = CAPTION_PROMPT
                     ) -> tf.data.Dataset:
  """One example per caption of ex[key] (str[N]): prefix = prompt, suffix = that caption,
  references = all N captions (image-text pretraining uses every caption once per epoch)."""
  def per_item(ex: Example) -> tf.data.Dataset:
    n = tf.shape(ex[key])[0]
    rest = {k: v for k, v in ex.items() if k != key}
    tiled = {k: tf.repeat(v[None], n, axis=0) for k, v in rest.items()}
    return tf.data.Dataset.from_tensor_slices({
        **tiled, "suffix": ex[key], "references": tf.repeat(ex[key][None], n, axis=0)})

  return ds.flat_map(per_item).map(lambda ex: {**ex, "prefix": tf.constant(prompt)},
                                   num_parallel_calls=tf.data.AUTOTUNE)


def tokenize_text(ds: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]
                  ) -> tf.data.Dataset:
  """Tokenises "prefix" and "suffix" (no EOS; batch_for_model adds BOS/separator/EOS) and keeps
  the text as "prefix_pretokenized"/"suffix_pretokenized". Unlike seqio's tokenize it leaves the
  frames alone (no "frames_pretokenized" copy)."""
  def fn(ex: Example) -> Example:
    out = dict(ex)
    for k in ("prefix", "suffix"):
      out[f"{k}_pretokenized"] = ex[k]
      out[k] = tf.cast(output_features[k].vocabulary.encode_tf(ex[k]), tf.int32)
    return out

  return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------------
# Model batches.


def separator_ids(vocab: seqio.SentencePieceVocabulary) -> tuple[int, ...]:
  """Token ids of the "\\n" separator: the "\\n" piece when the model has one (Gemma, demo),
  else the encoding of "\\n". Raises ValueError when "\\n" cannot be represented."""
  sp = vocab.tokenizer
  piece = sp.piece_to_id(SEPARATOR)
  if piece != sp.unk_id():
    return (int(piece),)
  ids = tuple(int(i) for i in sp.encode(SEPARATOR) if sp.id_to_piece(i) != "\u2581")
  if not ids or sp.unk_id() in ids:
    raise ValueError(f"tokenizer {vocab.sentencepiece_model_file} cannot encode '\\n'")
  return ids


def vlm_sequence(prefix: tf.Tensor, suffix: tf.Tensor, *, seq_len: int, bos_id: int,
                 eos_id: int, sep_ids: Sequence[int], include_suffix: bool = True) -> Example:
  """One example's model tokens and masks.

  Args:
    prefix: int32[Lp] prompt tokens (no BOS/EOS).
    suffix: int32[Ls] target tokens (no EOS).
    seq_len: L, output length.
    bos_id, eos_id: special ids.
    sep_ids: separator tokens after the prefix ("\\n").
    include_suffix: False for decoding inputs: [BOS + prefix + "\\n"] only.

  Returns:
    {"tokens", "mask_ar", "mask_loss", "mask_input"}: int32[L] each.
  """
  head = tf.concat([tf.constant([bos_id], tf.int32), tf.cast(prefix, tf.int32),
                    tf.constant(list(sep_ids), tf.int32)], axis=0)
  if include_suffix:
    tail = tf.concat([tf.cast(suffix, tf.int32), tf.constant([eos_id], tf.int32)], axis=0)
  else:
    tail = tf.zeros([0], tf.int32)
  tokens = tf.concat([head, tail], axis=0)[:seq_len]
  n_head = tf.minimum(tf.shape(head)[0], seq_len)
  n = tf.shape(tokens)[0]
  pos = tf.range(seq_len)
  pad = seq_len - n
  return {
      "tokens": tf.ensure_shape(tf.pad(tokens, [[0, pad]]), [seq_len]),
      "mask_ar": tf.cast(pos >= n_head, tf.int32),
      "mask_loss": tf.cast((pos >= n_head) & (pos < n), tf.int32),
      "mask_input": tf.cast(pos < n, tf.int32),
  }


def batch_for_model(ds: tf.data.Dataset, *, batch_size: int, seq_len: int,
                    vocab: seqio.SentencePieceVocabulary, keep: Iterable[str] = (),
                    include_suffix: bool = True, drop_remainder: bool = True
                    ) -> tf.data.Dataset:
  """Task examples -> model batches.

  Args:
    ds: a seqio task/mixture dataset (features "frames", "prefix", "suffix" tokenised).
    batch_size: B.
    seq_len: L.
    vocab: the task vocabulary (for BOS/EOS and the "\\n" separator).
    keep: other example keys to pass through batched (e.g. "video_id", "references"); strings
      of variable length are padded with "".
    include_suffix: False to build decoding inputs (prefix only, no loss).
    drop_remainder: drop a last partial batch (static batch shapes for jit).

  Returns:
    Batches {"frames": uint8[B,T,H,W,3], "tokens", "mask_ar", "mask_loss", "mask_input":
    int32[B,L], **keep}.
  """
  sp = vocab.tokenizer
  bos_id, eos_id, sep = int(sp.bos_id()), int(sp.eos_id()), separator_ids(vocab)
  if bos_id < 0 or eos_id < 0:
    raise ValueError(f"tokenizer {vocab.sentencepiece_model_file} lacks BOS/EOS ids")
  keep = tuple(keep)

  def to_model(ex: Example) -> Example:
    out = vlm_sequence(ex["prefix"], ex["suffix"], seq_len=seq_len, bos_id=bos_id,
                       eos_id=eos_id, sep_ids=sep, include_suffix=include_suffix)
    return {"frames": ex["frames"], **out, **{k: ex[k] for k in keep}}

  return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).padded_batch(
      batch_size, drop_remainder=drop_remainder)


_RETIRED: list[Any] = []  # tf.data iterators that must never be destroyed (see below).


def text_tokens_tf(vocab: seqio.SentencePieceVocabulary, text: tf.Tensor, seq_len: int
                   ) -> tf.Tensor:
  """SigLIP-style text ids: lower-case, cut to seq_len - 1, EOS, padded with EOS -> int32[seq_len]."""
  eos = int(vocab.tokenizer.eos_id())
  ids = tf.cast(vocab.encode_tf(tf.strings.lower(text, encoding="utf-8")), tf.int32)
  ids = tf.concat([ids[:seq_len - 1], tf.constant([eos], tf.int32)], axis=0)
  ids = tf.pad(ids, [[0, seq_len - tf.shape(ids)[0]]], constant_values=eos)
  return tf.ensure_shape(ids, [seq_len])


def text_tokens(vocab: seqio.SentencePieceVocabulary, texts: Sequence[str], seq_len: int
                ) -> np.ndarray:
  """`text_tokens_tf` of a list of strings -> int32[N, seq_len] (for evaluation)."""
  if not texts:
    return np.zeros((0, seq_len), np.int32)
  return tf.map_fn(lambda t: text_tokens_tf(vocab, t, seq_len), tf.constant(list(texts)),
                   fn_output_signature=tf.TensorSpec([seq_len], tf.int32)).numpy()


def numpy_iterator(ds: tf.data.Dataset) -> Iterator[Any]:
  """`ds.as_numpy_iterator()` whose tf.data iterator is never destroyed (an intentional leak).

  The data tasks decode video in `tf.data.Dataset.from_generator` (a Python function), and
  parallel map / prefetch threads call it ahead of the consumer. Destroying an iterator while such
  a call is in flight (an infinite stream when training ends, a `take` that stops early, the
  interpreter's exit) runs its C++ destructor with the GIL held; the destructor waits for the
  in-flight generator calls, which wait for the GIL: a deadlock (seen with TF 2.21). So when the
  consumer leaves, the iterator is parked with an extra reference that is never released: its
  threads fill their bounded buffers (or reach the end) and idle until the process exits.
  """
  # Bound now: at the interpreter's teardown, module globals may already be None.
  retired, incref, py_object = _RETIRED, ctypes.pythonapi.Py_IncRef, ctypes.py_object
  it = ds.as_numpy_iterator()
  try:
    yield from it
  finally:
    retired.append(it)
    incref(py_object(it))  # Survives the interpreter's teardown too.
