"""TFDS builders: decode each clip once, store the sampled frames as PNG sequences in shards.

Training at scale should not decode mp4 every epoch. These builders read a data set's root
(`manual_dir`) with the readers in data.readers, decode every clip ONCE with
data.video.decode_frames (mode="uniform": the centred window of `num_frames` frames at `fps`,
square `res`), and write the frames as a `tfds.features.Video` (a sequence of PNG images,
lossless, so the stored frames equal the direct PyAV path bit for bit) into sharded files.
seqio tasks read them with `seqio.TfdsDataSource` (see data.tasks).

The per-data-set item generators below (`*_items`: key, media path and every field except the
frames) and `decode_item` are the single definition of each data set's raw example; the PyAV
seqio source in data.tasks uses the same generators and the same feature specs
(`*_features(...).get_tensor_spec()`), so both paths give the same dicts:

  msrvtt    {"key", "video_id": str, "frames": uint8[T,R,R,3], "captions": str[N]}
            splits: those of MSRVTT_data.json (train/validate/test) present, plus "test_1ka"
            (one JSFUSION sentence per video; key = the CSV's key).
  nextqa    {"video_id": str, "frames", "qa": {"qid": int32[Q], "question": str[Q],
            "answer": str[Q], "extra_answers": str[Q] ("|"-joined), "type": str[Q]}} one per video.
  webvid / internvid (pool)  {"clip_id": str, "frames", "alt_text": str}
  smit      {"video_id": str, "frames", "caption": str}
  kinetics  {"clip_id": str, "frames", "label": str, "label_id": int32} (label_id = index in the
            sorted label set of the split).
  coco      {"image_id": str, "frames": uint8[1,R,R,3], "captions": str[N]} (stills; no builder,
            images are read directly).

Bad rows and clips are skipped and counted (data.rejects); the counts of a build are stored in the
prepared data set's metadata ("rejects") and, when given, appended to a rejects JSONL.

Command line:
  python -m data.tfds_builders --dataset=msrvtt --manual_dir=/data/msrvtt --data_dir=/data/tfds \
      --num_frames=8 --fps=2 --res=224
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import pathlib
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from data import readers
from data import rejects as rj
from data import video
from data.rejects import Rejects

DATA_VERSION = "1.0.0"
Example = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Sampling, clip items (what to decode + the example's other fields) and decoding.


@dataclasses.dataclass(frozen=True)
class Sampling:
  """How frames are taken from a clip (see data.video for the rule)."""
  num_frames: int
  fps: float
  res: int
  mode: video.Mode = "uniform"


@dataclasses.dataclass(frozen=True)
class ClipItem:
  """One example before decoding: its key, media file and every field except "frames".

  Attributes:
    key: unique example key within a split.
    path: media file.
    fields: the example's other features (strings, ints, lists, nested dicts), final form.
    segment: (start_s, end_s) to cut from the file, or None for the whole file.
    image: True for a still image (a 1-frame clip, data.video.load_image), False for a video.
    detail: extra text for a reject record (e.g. how many questions depend on the clip).
  """
  key: str
  path: pathlib.Path
  fields: dict[str, Any]
  segment: tuple[float, float] | None = None
  image: bool = False
  detail: str = ""


def decode_item(item: ClipItem, sampling: Sampling, rng: np.random.Generator | None,
                rejects: Rejects) -> Example | None:
  """item.fields + {"frames": uint8[T, R, R, 3]} (T = 1 for images), or None when the media
  cannot give the frames (the reason is counted in `rejects` under source "video"/"image")."""
  try:
    if item.image:
      frames = video.load_image(item.path, sampling.res)
    else:
      frames = video.decode_frames(item.path, sampling.num_frames, sampling.fps, sampling.res,
                                   mode=sampling.mode, rng=rng, segment=item.segment)
  except video.VideoError as e:
    rejects.add("image" if item.image else "video", str(item.path), e.reason,
                (e.detail + " " + item.detail).strip())
    return None
  return {**item.fields, "frames": frames}


def _unique(items: Iterable[ClipItem], source: str, rejects: Rejects) -> Iterator[ClipItem]:
  """Drops (and counts as duplicate_key) items whose key was seen before: TFDS and the
  evaluators need unique keys, and a repeated row is a data error."""
  seen: set[str] = set()
  for item in items:
    if item.key in seen:
      rejects.add(source, item.key, rj.DUPLICATE_KEY, f"key {item.key!r} seen before")
      continue
    seen.add(item.key)
    yield item


def msrvtt_splits(root: pathlib.Path) -> list[str]:
  """Splits with at least one video in MSRVTT_data.json, plus "test_1ka" when its CSV exists."""
  data = readers.load_json(root / "MSRVTT_data.json")
  present = {v.get("split") for v in data["videos"] if isinstance(v, dict)}
  splits = [s for s in ("train", "validate", "test") if s in present]
  if (root / "MSRVTT_JSFUSION_test.csv").is_file():
    splits.append("test_1ka")
  return splits


def msrvtt_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  """MSR-VTT videos with all captions, or the 1k-A pairs (one sentence) for "test_1ka"."""
  if split == "test_1ka":
    items = (ClipItem(p.key, p.path, {"key": p.key, "video_id": p.video_id,
                                      "captions": [p.sentence]})
             for p in readers.read_msrvtt_1ka(root, rejects=rejects))
  else:
    items = (ClipItem(v.video_id, v.path, {"key": v.video_id, "video_id": v.video_id,
                                           "captions": list(v.captions)})
             for v in readers.read_msrvtt(root, split, rejects=rejects))
  return _unique(items, f"msrvtt/{split}", rejects)


def msrvtt_qa_splits(root: pathlib.Path) -> list[str]:
  return readers.msrvtt_qa_splits(root)


def msrvtt_qa_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  """MSR-VTT-QA: one item per video holding all its questions (in file order), in the NExT-QA
  item layout (nextqa_features; no extra reference answers)."""
  by_video: dict[str, list[readers.MsrvttQuestion]] = collections.OrderedDict()
  for q in readers.read_msrvtt_qa(root, split, rejects=rejects):
    by_video.setdefault(q.video_id, []).append(q)
  for vid, qs in by_video.items():
    yield ClipItem(vid, qs[0].path, {"video_id": vid, "qa": {
        "qid": np.array([q.qid for q in qs], np.int32),
        "question": [q.question for q in qs], "answer": [q.answer for q in qs],
        "extra_answers": ["" for _ in qs], "type": [q.type for q in qs]}},
                   detail=f"({len(qs)} questions dropped)")


def anet_caption_splits(root: pathlib.Path) -> list[str]:
  return [s for s in ("train", "val_1", "val_2") if (root / f"{s}.json").is_file()]


def anet_caption_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  """ActivityNet Captions: one item per captioned segment (cut from its video), in the MSR-VTT
  item layout (msrvtt_features: key "<video>_<segment>", captions = [its sentence])."""
  return _unique((ClipItem(s.key, s.path, {"key": s.key, "video_id": s.video_id,
                                           "captions": [s.sentence]}, segment=s.segment)
                  for s in readers.read_anet_captions(root, split, rejects=rejects)),
                 f"activitynet/{split}", rejects)


def anet_qa_splits(root: pathlib.Path) -> list[str]:
  return [s for s in ("train", "val", "test") if (root / f"{s}_q.json").is_file()]


def anet_qa_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  """ActivityNet-QA: one item per video holding all its questions (qid: their order in the
  file), in the NExT-QA item layout (nextqa_features)."""
  by_video: dict[str, list[readers.AnetQuestion]] = collections.OrderedDict()
  for q in readers.read_anet_qa(root, split, rejects=rejects):
    by_video.setdefault(q.video_id, []).append(q)
  for vid, qs in by_video.items():
    yield ClipItem(vid, qs[0].path, {"video_id": vid, "qa": {
        "qid": np.arange(len(qs), dtype=np.int32),
        "question": [q.question for q in qs], "answer": [q.answer for q in qs],
        "extra_answers": ["" for _ in qs], "type": [q.type for q in qs]}},
                   detail=f"({len(qs)} questions dropped)")


def vatex_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  """VATEX: one item per clip with its English captions (msrvtt_features)."""
  return _unique((ClipItem(c.video_id, c.path, {"key": c.video_id, "video_id": c.video_id,
                                                "captions": list(c.captions)})
                  for c in readers.read_vatex(root, split, rejects=rejects)),
                 f"vatex/{split}", rejects)


def nextqa_splits(root: pathlib.Path) -> list[str]:
  return [s for s in ("train", "val", "test") if (root / f"{s}.csv").is_file()]


def nextqa_items(root: pathlib.Path, split: str, rejects: Rejects,
                 extra_answers_file: str | None = None) -> Iterator[ClipItem]:
  """NExT-QA: one item per video holding all its questions (in file order)."""
  by_video: dict[str, list[readers.NextqaQuestion]] = collections.OrderedDict()
  for q in readers.read_nextqa(root, split, rejects=rejects,
                               extra_answers_file=extra_answers_file):
    by_video.setdefault(q.video, []).append(q)
  for vid, qs in by_video.items():
    yield ClipItem(vid, qs[0].path, {"video_id": vid, "qa": {
        "qid": np.array([q.qid for q in qs], np.int32),
        "question": [q.question for q in qs], "answer": [q.answer for q in qs],
        "extra_answers": ["|".join(q.answers[1:]) for q in qs], "type": [q.type for q in qs]}},
                   detail=f"({len(qs)} questions dropped)")


def webvid_items(root: pathlib.Path, csv_name: str, rejects: Rejects,
                 path_template: str = "{contentUrl}") -> Iterator[ClipItem]:
  """A WebVid CSV; alt_text = the `name` column."""
  return _unique((ClipItem(c.videoid, c.path, {"clip_id": c.videoid, "alt_text": c.name})
                  for c in readers.read_webvid(root, csv_name, rejects=rejects,
                                               path_template=path_template)),
                 f"webvid/{csv_name}", rejects)


def internvid_items(root: pathlib.Path, jsonl_name: str, rejects: Rejects,
                    path_template: str = "videos/{YoutubeID}.mp4", full_videos: bool = True
                    ) -> Iterator[ClipItem]:
  """An InternVid JSONL; alt_text = Caption; full videos are cut to the clip's segment."""
  return _unique((ClipItem(c.clip_id, c.path, {"clip_id": c.clip_id, "alt_text": c.caption},
                           segment=c.segment)
                  for c in readers.read_internvid(root, jsonl_name, rejects=rejects,
                                                  path_template=path_template,
                                                  full_videos=full_videos)),
                 f"internvid/{jsonl_name}", rejects)


def smit_splits(root: pathlib.Path) -> list[str]:
  return [s for s in ("train", "val", "test") if (root / f"{s}.csv").is_file()]


def smit_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  return _unique((ClipItem(c.video_id, c.path, {"video_id": c.video_id, "caption": c.caption})
                  for c in readers.read_smit(root, split, rejects=rejects)),
                 f"smit/{split}", rejects)


def kinetics_splits(root: pathlib.Path) -> list[str]:
  return [s for s in ("train", "validate", "test") if (root / f"{s}.csv").is_file()]


def kinetics_labels(root: pathlib.Path, split: str) -> list[str]:
  """Sorted class names of a Kinetics split: label_id indexes this list."""
  throwaway = Rejects("kinetics_labels")  # the real pass counts the rejects
  return sorted({c.label for c in readers.read_kinetics(root, split, rejects=throwaway,
                                                        check_files=False)})


def kinetics_items(root: pathlib.Path, split: str, rejects: Rejects) -> Iterator[ClipItem]:
  labels = {name: i for i, name in enumerate(kinetics_labels(root, split))}
  return _unique((ClipItem(c.clip_id, c.path, {"clip_id": c.clip_id, "label": c.label,
                                               "label_id": np.int32(labels[c.label])})
                  for c in readers.read_kinetics(root, split, rejects=rejects)),
                 f"kinetics/{split}", rejects)


def coco_splits(root: pathlib.Path, annotation_template: str = "captions_{split}.json"
                ) -> list[str]:
  return [s for s in ("train", "val", "test")
          if (root / annotation_template.format(split=s)).is_file()]


def coco_items(root: pathlib.Path, split: str, rejects: Rejects,
               annotation_template: str = "captions_{split}.json", image_dir: str = "images"
               ) -> Iterator[ClipItem]:
  """COCO-captions images (1-frame clips) with all their captions."""
  return (ClipItem(str(im.image_id), im.path, {"image_id": str(im.image_id),
                                               "captions": list(im.captions)}, image=True)
          for im in readers.read_coco_captions(root, split, rejects=rejects,
                                               annotation_template=annotation_template,
                                               image_dir=image_dir))


# ----------------------------------------------------------------------------------------------
# Feature specs (one per data set; the PyAV path uses `.get_tensor_spec()` of the same dict).


def _video(num_frames: int, res: int, encoding: str) -> tfds.features.Video:
  return tfds.features.Video(shape=(num_frames, res, res, 3), encoding_format=encoding)


def msrvtt_features(num_frames: int, res: int, encoding: str = "png") -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "key": tfds.features.Text(), "video_id": tfds.features.Text(),
      "frames": _video(num_frames, res, encoding),
      "captions": tfds.features.Sequence(tfds.features.Text())})


def nextqa_features(num_frames: int, res: int, encoding: str = "png") -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "video_id": tfds.features.Text(), "frames": _video(num_frames, res, encoding),
      "qa": tfds.features.Sequence({
          "qid": tf.int32, "question": tfds.features.Text(), "answer": tfds.features.Text(),
          "extra_answers": tfds.features.Text(), "type": tfds.features.Text()})})


def pool_features(num_frames: int, res: int, encoding: str = "png") -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "clip_id": tfds.features.Text(), "frames": _video(num_frames, res, encoding),
      "alt_text": tfds.features.Text()})


def smit_features(num_frames: int, res: int, encoding: str = "png") -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "video_id": tfds.features.Text(), "frames": _video(num_frames, res, encoding),
      "caption": tfds.features.Text()})


def kinetics_features(num_frames: int, res: int, encoding: str = "png"
                      ) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "clip_id": tfds.features.Text(), "frames": _video(num_frames, res, encoding),
      "label": tfds.features.Text(), "label_id": tf.int32})


def coco_features(num_frames: int, res: int, encoding: str = "png") -> tfds.features.FeaturesDict:
  """Stills: always one frame (num_frames is ignored)."""
  del num_frames
  return tfds.features.FeaturesDict({
      "image_id": tfds.features.Text(), "frames": _video(1, res, encoding),
      "captions": tfds.features.Sequence(tfds.features.Text())})


# ----------------------------------------------------------------------------------------------
# Builders.


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
  """Frame sampling of a prepared video data set, plus format options of some readers.

  Attributes:
    num_frames, fps, res: as data.video.decode_frames (mode is always "uniform" here).
    encoding: image encoding of the stored frames, "png" (lossless) or "jpeg".
    annotations: pool builders only: (split, annotation file under manual_dir) pairs, e.g.
      (("train", "results_2M_train.csv"),).
    path_template: pool builders only: media path template (see data.readers).
    full_videos: InternVid only: files are whole videos, clips are decoded as segments.
  """
  num_frames: int = 8
  fps: float = 2.0
  res: int = 224
  encoding: str = "png"
  annotations: tuple[tuple[str, str], ...] = ()
  path_template: str = ""
  full_videos: bool = True


def config_name(num_frames: int, fps: float, res: int) -> str:
  """'f8_fps2_r224'-style name ('.' in fps written as 'p')."""
  fps_text = f"{fps:g}".replace(".", "p")
  return f"f{num_frames}_fps{fps_text}_r{res}"


def make_config(num_frames: int, fps: float, res: int, *, encoding: str = "png",
                annotations: tuple[tuple[str, str], ...] = (), path_template: str = "",
                full_videos: bool = True) -> VideoConfig:
  return VideoConfig(name=config_name(num_frames, fps, res), version=DATA_VERSION,
                     description=f"{num_frames} frames at {fps} fps, {res}x{res}, {encoding}",
                     num_frames=num_frames, fps=fps, res=res, encoding=encoding,
                     annotations=annotations, path_template=path_template,
                     full_videos=full_videos)


class _VideoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Common part: config -> features, manual_dir -> splits, examples, reject counts."""

  VERSION = tfds.core.Version(DATA_VERSION)
  RELEASE_NOTES = {DATA_VERSION: "First version: frames decoded with PyAV, stored as PNG sequences."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir = the data set's root directory in its public format."
  BUILDER_CONFIGS = [make_config(8, 2.0, 224)]
  _features_fn: Callable[..., tfds.features.FeaturesDict]

  def __init__(self, *, rejects: Rejects | None = None, **kwargs: Any):
    super().__init__(**kwargs)
    self._rejects = rejects if rejects is not None else Rejects(self.name)

  @property
  def rejects(self) -> Rejects:
    return self._rejects

  @property
  def _sampling(self) -> Sampling:
    c = self.builder_config
    return Sampling(num_frames=c.num_frames, fps=c.fps, res=c.res, mode="uniform")

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        features=type(self)._features_fn(c.num_frames, c.res, c.encoding),
        metadata=tfds.core.MetadataDict(), disable_shuffling=True)

  def _split_names(self, root: pathlib.Path) -> list[str]:
    raise NotImplementedError

  def _items(self, root: pathlib.Path, split: str) -> Iterator[ClipItem]:
    raise NotImplementedError

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = pathlib.Path(dl_manager.manual_dir)
    splits = self._split_names(root)
    if not splits:
      raise FileNotFoundError(f"{self.name}: no split's annotation file found under {root}")
    return {s: self._generate_examples(root, s) for s in splits}

  def _generate_examples(self, root: pathlib.Path, split: str):
    for item in self._items(root, split):
      example = decode_item(item, self._sampling, None, self._rejects)
      if example is not None:
        yield item.key, example
    self.info.metadata.setdefault("rejects", {})[split] = self._rejects.counts


class ViitMsrvtt(_VideoBuilder):
  """MSR-VTT (MSRVTT_data.json splits + 1k-A "test_1ka")."""
  _features_fn = staticmethod(msrvtt_features)

  def _split_names(self, root):
    return msrvtt_splits(root)

  def _items(self, root, split):
    return msrvtt_items(root, split, self._rejects)


class ViitNextqa(_VideoBuilder):
  """NExT-QA open-ended (one example per video with all its questions)."""
  _features_fn = staticmethod(nextqa_features)

  def _split_names(self, root):
    return nextqa_splits(root)

  def _items(self, root, split):
    return nextqa_items(root, split, self._rejects)


class ViitSmit(_VideoBuilder):
  """S-MiT-style captioned clips."""
  _features_fn = staticmethod(smit_features)

  def _split_names(self, root):
    return smit_splits(root)

  def _items(self, root, split):
    return smit_items(root, split, self._rejects)


class ViitKinetics(_VideoBuilder):
  """Kinetics clips with labels."""
  _features_fn = staticmethod(kinetics_features)

  def _split_names(self, root):
    return kinetics_splits(root)

  def _items(self, root, split):
    return kinetics_items(root, split, self._rejects)


class ViitWebvid(_VideoBuilder):
  """A WebVid-format unlabeled pool (config.annotations names the CSV of each split)."""
  _features_fn = staticmethod(pool_features)

  def _split_names(self, root):
    return [s for s, name in self.builder_config.annotations if (root / name).is_file()]

  def _items(self, root, split):
    c = self.builder_config
    return webvid_items(root, dict(c.annotations)[split], self._rejects,
                        path_template=c.path_template or "{contentUrl}")


class ViitInternvid(_VideoBuilder):
  """An InternVid-format pool (config.annotations names the JSONL of each split)."""
  _features_fn = staticmethod(pool_features)

  def _split_names(self, root):
    return [s for s, name in self.builder_config.annotations if (root / name).is_file()]

  def _items(self, root, split):
    c = self.builder_config
    return internvid_items(root, dict(c.annotations)[split], self._rejects,
                           path_template=c.path_template or "videos/{YoutubeID}.mp4",
                           full_videos=c.full_videos)


BUILDERS: dict[str, type[_VideoBuilder]] = {
    "msrvtt": ViitMsrvtt, "nextqa": ViitNextqa, "smit": ViitSmit, "kinetics": ViitKinetics,
    "webvid": ViitWebvid, "internvid": ViitInternvid}


def prepared_dir(dataset: str, data_dir: str | pathlib.Path, config: VideoConfig) -> pathlib.Path:
  """Where `prepare` writes a data set: <data_dir>/<builder name>/<config name>/<version>."""
  return pathlib.Path(data_dir) / BUILDERS[dataset].name / config.name / DATA_VERSION


def prepare(dataset: str, manual_dir: str | pathlib.Path, data_dir: str | pathlib.Path,
            config: VideoConfig, *, rejects: Rejects | None = None,
            num_shards: int | None = None) -> pathlib.Path:
  """Builds one data set's TFDS shards (no-op when already prepared). Returns the prepared dir.

  Args:
    dataset: a key of BUILDERS.
    manual_dir: the data set's root in its public format.
    data_dir: TFDS data dir to write to.
    config: frame sampling (make_config(...)).
    rejects: where skipped rows/clips are counted (default: a fresh Rejects, in-memory only).
    num_shards: force a number of shard files per split (default: TFDS decides by size).
  """
  if dataset not in BUILDERS:
    raise ValueError(f"no TFDS builder for {dataset!r}; have {sorted(BUILDERS)}")
  manual_dir = pathlib.Path(manual_dir)
  if not manual_dir.is_dir():
    raise FileNotFoundError(f"manual_dir {manual_dir} does not exist")
  builder = BUILDERS[dataset](data_dir=str(data_dir), config=config, rejects=rejects)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), try_download_gcs=False, num_shards=num_shards))
  return prepared_dir(dataset, data_dir, config)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True, choices=sorted(BUILDERS))
  parser.add_argument("--manual_dir", required=True)
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--num_frames", type=int, required=True)
  parser.add_argument("--fps", type=float, required=True)
  parser.add_argument("--res", type=int, required=True)
  parser.add_argument("--encoding", default="png", choices=["png", "jpeg"])
  parser.add_argument("--annotations", default="",
                      help="pools: split=file[,split=file], e.g. train=results_2M_train.csv")
  parser.add_argument("--path_template", default="",
                      help="pools: media path template (see data.readers.read_webvid/_internvid)")
  parser.add_argument("--clips_are_cut", action="store_true",
                      help="internvid: files are the cut clips, not whole videos")
  parser.add_argument("--rejects", default=None, help="JSONL file for rejected rows/clips")
  parser.add_argument("--num_shards", type=int, default=None)
  args = parser.parse_args(argv)
  annotations = tuple(tuple(kv.split("=", 1)) for kv in args.annotations.split(",") if kv)
  config = make_config(args.num_frames, args.fps, args.res, encoding=args.encoding,
                       annotations=annotations, path_template=args.path_template,
                       full_videos=not args.clips_are_cut)
  rejects = Rejects(args.dataset, args.rejects)
  out = prepare(args.dataset, args.manual_dir, args.data_dir, config, rejects=rejects,
                num_shards=args.num_shards)
  print(f"prepared {out}; rejects: {rejects.counts or 'none'}")


if __name__ == "__main__":
  main()
