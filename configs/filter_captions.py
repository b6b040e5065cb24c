"""Caption filtering: keep the captions of an auto-labeling version that a dual encoder agrees with.

Run (after `make demo`: the VIIT captions scored by the dual encoder trained on them):
  python -m viit_jax.filter_captions --config=configs/filter_captions.py:\
dual_encoder=runs/demo/de_viit,corpus=runs/demo/label_viit,top_k=2 --workdir=runs/label_viit_top2
  # -> runs/label_viit_top2/v1/{manifest.json, CARD.md, units/unit-*.{tfrecord,jsonl,...}}
The output is an auto-labeling version like its source (a dual encoder trains on it with
dual_encoder.viit_captions_dir=<workdir>/v1); its manifest records the source and the filter.
"""
import ml_collections

from viit_jax import config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = "filter_captions"
  c.dual_encoder = ""  # Dual-encoder trainer workdir (the scorer); required.
  c.dual_encoder_step = -1  # Its checkpoint step (-1: latest).
  c.corpus = ""  # Auto-labeling workdir (its only finished version) or version directory.
  c.corpus_version = ""  # The source version when the workdir holds several.
  c.video_root = ""  # Where the corpus' videos are ('' = its manifest's root).
  # The scores come from the dual encoder's search index over the corpus (viit_jax.search), built
  # here when missing and shared with viit_jax.serve;
  # '' = <dual_encoder>/search_index/<corpus>-<version>-step<N>.
  c.index = ""
  c.version = "v1"  # Output: <workdir>/<version>/.
  # A caption is kept when its cosine to its clip is >= min_score and it is among the clip's
  # top_k (0: no limit) after that. At least one of the two must filter. Clips left with no
  # caption are dropped and counted (reason no_caption_kept); clips that did not decode for the
  # index are dropped with their reason.
  c.min_score = -1.0
  c.top_k = 0
  c.decode_workers = 2  # PyAV threads while building the index.
  return config_lib.finalize(c, arg)
