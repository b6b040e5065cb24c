"""Rasteriser and encoders of the demo world (the world itself: data/demo_world/__init__.py).

Shapes are drawn with signed distance functions and a one-pixel anti-aliased edge on a plain
background; clips are encoded as real H.264 mp4 (libx264, yuv420p) with PyAV, stills as PNG.
Everything here is a pure function of its inputs, so workers of a process pool can run it and
the same tracks always give the same pixels and the same mp4 bytes (x264 single-threaded, no
MB-tree, RGB->YUV done here).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

import av
import numpy as np
from PIL import Image

FRAME_SIZE = 64
FPS = 4
BACKGROUND = (225, 225, 225)
# Near-lossless for flat colours: decoded interiors stay within a few levels and two clips that
# share a frame decode it alike (mean |diff| < 1 level); ~5 KB per clip.
CRF = 14

# Geometry relative to an actor's nominal radius r (so every shape has a similar area).
SQUARE_HALF = 0.85   # half side of the square
DIAMOND_HALF = 1.1   # half diagonal of the diamond
TRIANGLE_CIRCUM = 1.15  # circumradius of the upward equilateral triangle (centred on its centroid)
_S3 = np.sqrt(3.0)


@dataclasses.dataclass(frozen=True)
class Track:
  """One actor over the simulated frames.

  Attributes:
    shape: "circle" | "square" | "triangle" | "diamond".
    x, y: float32[F] centre in pixel coordinates (x right, y down; pixel centres at 0..63).
    r: float32[F] nominal radius in pixels.
    alpha: float32[F] opacity in [0, 1].
    rgb: float32[F, 3] colour in [0, 255].
  """
  shape: str
  x: np.ndarray
  y: np.ndarray
  r: np.ndarray
  alpha: np.ndarray
  rgb: np.ndarray

  def reversed(self) -> "Track":
    """The same track played backwards (frame f of the result is frame F-1-f of this one)."""
    return Track(self.shape, self.x[::-1].copy(), self.y[::-1].copy(), self.r[::-1].copy(),
                 self.alpha[::-1].copy(), self.rgb[::-1].copy())


def extents(shape: str, r: np.ndarray | float) -> tuple:
  """Distances from the centre to the shape's left, right, top and bottom edges."""
  if shape == "circle":
    return r, r, r, r
  if shape == "square":
    h = SQUARE_HALF * r
    return h, h, h, h
  if shape == "diamond":
    d = DIAMOND_HALF * r
    return d, d, d, d
  if shape == "triangle":
    big_r = TRIANGLE_CIRCUM * r
    half_w = _S3 / 2 * big_r
    return half_w, half_w, big_r, big_r / 2
  raise ValueError(f"unknown shape {shape!r}")


def bounding_radius(shape: str, r: np.ndarray | float) -> np.ndarray | float:
  """Radius of the smallest centred circle that contains the shape."""
  factor = {"circle": 1.0, "square": SQUARE_HALF * np.sqrt(2.0), "diamond": DIAMOND_HALF,
            "triangle": TRIANGLE_CIRCUM}[shape]
  return factor * r


def sdf(shape: str, px: np.ndarray, py: np.ndarray, r: np.ndarray | float) -> np.ndarray:
  """Signed distance (pixels, negative inside) of points offset (px, py) from the centre.

  px, py and r broadcast together; the triangle and diamond use the exact distance to the
  supporting lines, which is exact near the edges (all that anti-aliasing needs).
  """
  if shape == "circle":
    return np.sqrt(px * px + py * py) - r
  if shape == "square":
    return np.maximum(np.abs(px), np.abs(py)) - SQUARE_HALF * r
  if shape == "diamond":
    return (np.abs(px) + np.abs(py) - DIAMOND_HALF * r) / np.sqrt(2.0)
  if shape == "triangle":
    big_r = TRIANGLE_CIRCUM * r
    d_bottom = py
    d_right = (_S3 / 2) * px - 0.5 * py
    d_left = -(_S3 / 2) * px - 0.5 * py
    return np.maximum(np.maximum(d_bottom, d_right), d_left) - big_r / 2
  raise ValueError(f"unknown shape {shape!r}")


_GRID_Y, _GRID_X = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE].astype(np.float32)


def _coverage(shape: str, x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
  """float32[T, H, W] anti-aliased coverage of a shape at centres x, y (float[T]) and radii r."""
  px = _GRID_X[None] - x[:, None, None]
  py = _GRID_Y[None] - y[:, None, None]
  d = sdf(shape, px, py, r[:, None, None])
  return np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)


def _ring(shape: str, x: float, y: float, r: float, width: float) -> np.ndarray:
  """float32[H, W] coverage of the outline (width pixels) of a shape."""
  d = sdf(shape, _GRID_X - x, _GRID_Y - y, r)
  return np.clip(width / 2 + 0.5 - np.abs(d), 0.0, 1.0).astype(np.float32)


def _over(img: np.ndarray, cov: np.ndarray, rgb: np.ndarray) -> np.ndarray:
  """Composites colour rgb (float[..., 3]) with coverage cov (float[..., H, W]) over img."""
  c = cov[..., None]
  return img * (1.0 - c) + rgb * c


def render(tracks: Sequence[Track], frames: Sequence[int]) -> np.ndarray:
  """uint8[T, 64, 64, 3]: the given frame indices of the tracks, drawn in track order."""
  idx = np.asarray(frames, dtype=np.int64)
  img = np.empty((len(idx), FRAME_SIZE, FRAME_SIZE, 3), np.float32)
  img[:] = np.asarray(BACKGROUND, np.float32)
  for t in tracks:
    alpha = t.alpha[idx]
    if not np.any(alpha > 0):
      continue
    x, y, r = t.x[idx], t.y[idx], t.r[idx]
    reach = bounding_radius(t.shape, r) + 1.0  # Only the box the actor sweeps is touched.
    x0, x1 = max(int(np.min(x - reach)), 0), min(int(np.max(x + reach)) + 2, FRAME_SIZE)
    y0, y1 = max(int(np.min(y - reach)), 0), min(int(np.max(y + reach)) + 2, FRAME_SIZE)
    if x0 >= x1 or y0 >= y1:
      continue
    px = _GRID_X[None, y0:y1, x0:x1] - x[:, None, None]
    py = _GRID_Y[None, y0:y1, x0:x1] - y[:, None, None]
    cov = np.clip(0.5 - sdf(t.shape, px, py, r[:, None, None]), 0.0, 1.0)
    cov *= alpha[:, None, None]
    region = img[:, y0:y1, x0:x1]
    region += cov[..., None] * (t.rgb[idx][:, None, None, :] - region)
  return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Cue:
  """A motion cue drawn on a still so one image shows an action.

  kind: "trail" (faded copies at earlier positions, under the actors: moves and bounces),
    "halo" (faded larger earlier sizes, under the actors: shrinking), "rings" (outlines of the
    smaller earlier sizes, on top: growing), "old_colour" (an outline in the colour the actor
    had at `since`, on top: changing colour).
  actor: index of the cued track. since: frame the action started (for "old_colour").
  """
  kind: str
  actor: int
  since: int = 0


def render_still(tracks: Sequence[Track], frame: int, cue: Cue | None) -> np.ndarray:
  """uint8[64, 64, 3]: one frame, optionally with a motion cue for one actor."""
  img = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.float32)
  img[:] = np.asarray(BACKGROUND, np.float32)
  past = [f for f in (frame - 1, frame - 2, frame - 3, frame - 4) if f >= 0]
  if cue is not None and cue.kind in ("trail", "halo"):
    t = tracks[cue.actor]
    for k, f in reversed(list(enumerate(past))):  # Oldest (faintest) first.
      a = (0.6 - 0.13 * k) * t.alpha[f]
      cov = _coverage(t.shape, t.x[f:f + 1], t.y[f:f + 1], t.r[f:f + 1])[0] * a
      img = _over(img, cov, t.rgb[f])
  for t in tracks:
    cov = _coverage(t.shape, t.x[frame:frame + 1], t.y[frame:frame + 1], t.r[frame:frame + 1])
    img = _over(img, cov[0] * t.alpha[frame], t.rgb[frame])
  if cue is not None and cue.kind == "rings":
    t = tracks[cue.actor]
    dark = t.rgb[frame] * 0.45
    for k, f in enumerate(past[1::2]):  # Every other earlier size, two at most.
      if t.r[f] < t.r[frame] - 1.0:
        img = _over(img, _ring(t.shape, t.x[f], t.y[f], t.r[f], 1.2) * (0.8 - 0.25 * k), dark)
  if cue is not None and cue.kind == "old_colour":
    t = tracks[cue.actor]
    f = cue.since
    img = _over(img, _ring(t.shape, t.x[frame], t.y[frame], t.r[frame] + 1.5, 2.0), t.rgb[f])
  return np.clip(np.rint(img), 0, 255).astype(np.uint8)


_RGB_TO_YCC = np.asarray([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                          [112.0, -93.786, -18.214]], np.float32) / 255.0


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
  """uint8[T, H, W, 3] RGB -> uint8[T, H * 3 / 2, W] planar yuv420p (BT.601, limited range).

  Done here rather than by swscale inside PyAV, so the bytes handed to x264 are a function of
  the frames alone (2x2 chroma averaging).
  """
  t, h, w = frames.shape[:3]
  r, g, b = np.ascontiguousarray(np.moveaxis(frames, -1, 0), dtype=np.float32)  # [t, h, w]
  m = _RGB_TO_YCC.tolist()
  y = 16.0 + r * m[0][0] + g * m[0][1] + b * m[0][2]
  # Chroma is linear in RGB: convert the 2x2 means.
  r2, g2, b2 = (0.25 * (c[:, 0::2, 0::2] + c[:, 1::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 1::2])
                for c in (r, g, b))
  cb = 128.0 + r2 * m[1][0] + g2 * m[1][1] + b2 * m[1][2]
  cr = 128.0 + r2 * m[2][0] + g2 * m[2][1] + b2 * m[2][2]
  planes = np.concatenate([y.reshape(t, -1), cb.reshape(t, -1), cr.reshape(t, -1)], axis=1)
  return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(t, h * 3 // 2, w)


def encode_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int = FPS, crf: int = CRF) -> int:
  """Writes uint8[T, H, W, 3] as H.264 (libx264, yuv420p) mp4; returns the file size in bytes."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  with av.open(str(tmp), mode="w", format="mp4") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width = frames.shape[2]
    stream.height = frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.thread_count = 1  # Deterministic bytes, and the pool already uses the cores.
    # MB-tree made x264's output depend on what the process encoded before; without it the
    # bytes are a function of the frames alone.
    stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
    for yuv in rgb_to_yuv420p(frames):
      for packet in stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  os.replace(tmp, path)
  return path.stat().st_size


def write_png(image: np.ndarray, path: str | os.PathLike) -> int:
  """Writes uint8[H, W, 3] as PNG; returns the file size in bytes."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, format="PNG")
  return path.stat().st_size
