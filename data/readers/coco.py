"""COCO captions: {"images":[{id,file_name,height,width}],"annotations":[{id,image_id,caption}]}.
"""
from __future__ import annotations

import collections
import dataclasses
import pathlib
from typing import Any, Iterator

from data import rejects as rj
from data.readers.parse import PathLike, file_ok, load_json, source_name, strings_ok, text_field
from data.rejects import Rejects


# ----------------------------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class CaptionedImage:
  """One COCO-captions image with all its captions."""
  image_id: int
  path: pathlib.Path
  captions: tuple[str, ...]
  width: int
  height: int


# ----------------------------------------------------------------------------------------------
# Readers.


def read_coco_captions(root: PathLike, split: str, *, rejects: Rejects,
                       annotation_template: str = "captions_{split}.json",
                       image_dir: str = "images", check_files: bool = True
                       ) -> Iterator[CaptionedImage]:
  """Images of a COCO-captions file with all their captions, in the file's image order.

  Args:
    annotation_template: annotation file under root ("{split}" is replaced), e.g.
      "annotations/captions_{split}2017.json" for COCO 2017.
    image_dir: image directory under root ("{split}" is replaced), e.g. "{split}2017".

  Rejects: entries with missing keys (malformed_row), invalid UTF-8, captions of undefined
  images (unknown_video), images without a caption (malformed_row), missing image files.
  """
  root = pathlib.Path(root)
  path = root / annotation_template.format(split=split)
  source = source_name(root, path)
  data = load_json(path)
  if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
    raise ValueError(f"{path}: expected an object with 'images' and 'annotations'")
  images: dict[int, dict[str, Any]] = {}
  for i, im in enumerate(data["images"]):
    item = f"images[{i}]"
    if not strings_ok(im):
      rejects.add(source, item, rj.INVALID_UTF8, "a string field is not valid UTF-8")
      continue
    try:
      images[int(im["id"])] = {"file_name": text_field(im["file_name"], "file_name"),
                               "width": int(im["width"]), "height": int(im["height"])}
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
  captions: dict[int, list[str]] = collections.defaultdict(list)
  for i, a in enumerate(data["annotations"]):
    item = f"annotations[{i}]"
    if not strings_ok(a):
      rejects.add(source, item, rj.INVALID_UTF8, "caption is not valid UTF-8")
      continue
    try:
      image_id, caption = int(a["image_id"]), text_field(a["caption"], "caption")
    except (KeyError, TypeError, ValueError) as e:
      rejects.add(source, item, rj.MALFORMED_ROW, f"{type(e).__name__}: {e}")
      continue
    if image_id not in images:
      rejects.add(source, item, rj.UNKNOWN_VIDEO, f"caption for undefined image {image_id}")
      continue
    captions[image_id].append(caption)
  for image_id, meta in images.items():
    if not captions[image_id]:
      rejects.add(source, f"image {image_id}", rj.MALFORMED_ROW, "image has no valid caption")
      continue
    media = root / image_dir.format(split=split) / meta["file_name"]
    if not file_ok(root, media, source, f"image {image_id}", rejects, check_files):
      continue
    yield CaptionedImage(image_id=image_id, path=media, captions=tuple(captions[image_id]),
                         width=meta["width"], height=meta["height"])
