"""Video decoding with PyAV: T frames at a given fps, square-resized, as uint8[T, res, res, 3].

Sampling rule (the same for every caller: seqio tasks, TFDS builders, ad-hoc inputs):

* The source frame times t_k are the presentation timestamps of the video stream, relative to
  its first frame (or to the first frame at or after the segment start, for a segment).
  The clip duration is D = t_last + one frame period.
* The T output frames are sampled at times t_i = start + i / fps, i = 0..T-1, i.e. a window of
  W = T / fps seconds. Each t_i takes the source frame shown at that time (the last frame with
  t_k <= t_i).
* mode="uniform" (evaluation, TFDS preparation): the window is centred on the clip,
  start = max(0, (D - W) / 2). Deterministic.
* mode="random" (training): start is drawn uniformly from [0, max(0, D - W)] with the given
  numpy Generator.
* Short clips (D < W): the window starts at 0 and the times past the end take the LAST frame
  (the clip is padded by repeating its last frame). We do not loop: looping would replay actions
  and corrupt the temporal order that captions and questions depend on.
* A clip with fewer decodable frames than `min_frames` (default: T) is rejected with reason
  "too_short": it cannot give T distinct frames (a 1-frame mp4 asked for 8 frames is rejected).
* Each frame is converted to RGB and resized to res x res (aspect ratio not kept, as PaliGemma
  does) with PIL bilinear resampling, which is antialiased when shrinking.

Errors are `VideoError(reason, detail, path)` with reason one of data.rejects' constants
(missing_file, empty_file, corrupt, no_video_stream, too_short, empty_segment); callers skip the
clip and count the reason.
"""
from __future__ import annotations

import dataclasses
import fractions
import os
import pathlib
from typing import Literal

import av
import numpy as np
from PIL import Image

from data import rejects as rj

Mode = Literal["uniform", "random"]
_EPS = 1e-6


class VideoError(Exception):
  """A media file (video or image) that cannot give the frames asked for.

  Attributes:
    reason: a short machine-readable reason (see data.rejects constants).
    detail: human-readable explanation.
    path: the file.
  """

  def __init__(self, reason: str, detail: str, path: str | os.PathLike[str]):
    super().__init__(f"{reason}: {detail} ({path})")
    self.reason = reason
    self.detail = detail
    self.path = str(path)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """Stream facts from demuxing (no decoding).

  Attributes:
    num_frames: number of video packets (= frames for all common codecs).
    width, height: coded frame size in pixels.
    fps: average frame rate from the container.
    duration_s: duration from the packet timestamps (last pts - first pts + one frame period).
    times_s: float64[num_frames] presentation times relative to the first frame, sorted.
  """
  num_frames: int
  width: int
  height: int
  fps: float
  duration_s: float
  times_s: np.ndarray


def _check_file(path: pathlib.Path) -> None:
  if not path.exists():
    raise VideoError(rj.MISSING_FILE, "file does not exist", path)
  if not path.is_file():
    raise VideoError(rj.MISSING_FILE, "not a regular file", path)
  if path.stat().st_size == 0:
    raise VideoError(rj.EMPTY_FILE, "zero-byte file", path)


def _open(path: pathlib.Path) -> av.container.InputContainer:
  _check_file(path)
  try:
    container = av.open(str(path), mode="r")
  except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
    raise VideoError(rj.CORRUPT, f"cannot open: {e}", path) from e
  if not container.streams.video:
    container.close()
    raise VideoError(rj.NO_VIDEO_STREAM, "container has no video stream", path)
  return container


def _packet_pts(path: pathlib.Path) -> tuple[list[int], fractions.Fraction, float, int, int]:
  """Demuxes the video stream: sorted pts list, time base, average fps, width, height."""
  with _open(path) as container:
    stream = container.streams.video[0]
    pts: list[int] = []
    try:
      for packet in container.demux(stream):
        if packet.size == 0:  # flush packet
          continue
        if packet.pts is None:
          raise VideoError(rj.CORRUPT, "video packet without a timestamp", path)
        pts.append(int(packet.pts))
    except av.error.FFmpegError as e:
      raise VideoError(rj.CORRUPT, f"demux failed: {e}", path) from e
    if stream.time_base is None:
      raise VideoError(rj.CORRUPT, "video stream without a time base", path)
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    width, height = stream.codec_context.width, stream.codec_context.height
    time_base = stream.time_base
  if not pts:
    raise VideoError(rj.CORRUPT, "no video packets", path)
  pts.sort()
  return pts, time_base, rate, width, height


def _frame_period(times: np.ndarray, rate: float) -> float:
  if rate > 0:
    return 1.0 / rate
  if len(times) > 1:
    return float(np.median(np.diff(times)))
  return 0.0


def probe(path: str | os.PathLike[str]) -> VideoInfo:
  """Stream facts of a video file by demuxing only. Raises VideoError."""
  path = pathlib.Path(path)
  pts, time_base, rate, width, height = _packet_pts(path)
  times = np.array([float((p - pts[0]) * time_base) for p in pts], np.float64)
  duration = float(times[-1]) + _frame_period(times, rate)
  return VideoInfo(num_frames=len(pts), width=width, height=height, fps=rate, duration_s=duration,
                   times_s=times)


def sample_indices(times_s: np.ndarray, duration_s: float, num_frames: int, fps: float, *,
                   mode: Mode, rng: np.random.Generator | None = None) -> np.ndarray:
  """Indices into the source frames for the sampling rule in the module docstring.

  Args:
    times_s: float[N] sorted source frame times relative to the first frame.
    duration_s: clip duration D.
    num_frames: T.
    fps: sampling rate of the output frames.
    mode: "uniform" (centred window) or "random" (random start, needs rng).
    rng: numpy Generator for mode="random".

  Returns:
    int64[T] indices in [0, N).
  """
  if num_frames < 1 or fps <= 0:
    raise ValueError(f"num_frames must be >= 1 and fps > 0, got {num_frames}, {fps}")
  window = num_frames / fps
  slack = max(0.0, duration_s - window)
  if mode == "uniform":
    start = slack / 2
  elif mode == "random":
    if rng is None:
      raise ValueError("mode='random' needs an rng (numpy Generator)")
    start = float(rng.uniform(0.0, slack)) if slack > 0 else 0.0
  else:
    raise ValueError(f"mode must be 'uniform' or 'random', got {mode!r}")
  targets = start + np.arange(num_frames, dtype=np.float64) / fps
  idx = np.searchsorted(times_s, targets + _EPS, side="right") - 1
  return np.clip(idx, 0, len(times_s) - 1)


def _resize(image: Image.Image, res: int) -> np.ndarray:
  image = image.convert("RGB")
  if image.size != (res, res):
    image = image.resize((res, res), resample=Image.Resampling.BILINEAR)
  return np.asarray(image, dtype=np.uint8)


def decode_frames(path: str | os.PathLike[str], num_frames: int, fps: float, res: int, *,
                  mode: Mode = "uniform", rng: np.random.Generator | None = None,
                  segment: tuple[float, float] | None = None,
                  min_frames: int | None = None) -> np.ndarray:
  """Decodes T frames sampled at `fps` from a video, square-resized to `res`.

  Args:
    path: video file (any container/codec FFmpeg reads).
    num_frames: T, number of output frames.
    fps: output sampling rate (frames per second of video time).
    res: output height and width.
    mode: "uniform" (centred window, deterministic) or "random" (random start; needs rng).
    rng: numpy Generator for mode="random".
    segment: optional (start_s, end_s) in source time (seconds from the first frame): only frames
      with start_s <= t < end_s are used, as if the clip were cut there (InternVid-style clips of
      long videos). None: the whole file.
    min_frames: reject clips with fewer decodable frames than this (default: num_frames).

  Returns:
    uint8[T, res, res, 3] RGB frames.

  Raises:
    VideoError: with reason missing_file, empty_file, corrupt, no_video_stream, too_short or
      empty_segment.
  """
  path = pathlib.Path(path)
  min_frames = num_frames if min_frames is None else min_frames
  pts, time_base, rate, _, _ = _packet_pts(path)
  first = pts[0]
  if segment is not None:
    t0, t1 = segment
    lo = first + int(np.ceil(t0 / time_base - _EPS))
    hi = first + int(np.ceil(t1 / time_base - _EPS))
    pts = [p for p in pts if lo <= p < hi]
    if not pts:
      raise VideoError(rj.EMPTY_SEGMENT, f"no frame in segment [{t0}, {t1}) s", path)
  if len(pts) < min_frames:
    raise VideoError(rj.TOO_SHORT, f"{len(pts)} frame(s), need at least {min_frames}", path)
  times = np.array([float((p - pts[0]) * time_base) for p in pts], np.float64)
  duration = float(times[-1]) + _frame_period(times, rate)
  idx = sample_indices(times, duration, num_frames, fps, mode=mode, rng=rng)
  wanted: dict[int, list[int]] = {}
  for slot, i in enumerate(idx):
    wanted.setdefault(pts[int(i)], []).append(slot)
  out = np.zeros((num_frames, res, res, 3), np.uint8)
  filled = 0
  last_needed = max(wanted)
  with _open(path) as container:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
      if segment is not None and pts[0] > first:
        container.seek(pts[0], stream=stream, backward=True, any_frame=False)
      for frame in container.decode(stream):
        if frame.pts is None:
          continue
        slots = wanted.pop(int(frame.pts), None)
        if slots:
          pixels = _resize(frame.to_image(), res)
          for s in slots:
            out[s] = pixels
          filled += len(slots)
        if not wanted or frame.pts > last_needed:
          break
    except av.error.FFmpegError as e:
      raise VideoError(rj.CORRUPT, f"decode failed: {e}", path) from e
  if wanted:
    raise VideoError(rj.CORRUPT, f"decoded {filled} of {num_frames} sampled frames; "
                     f"{len(wanted)} timestamps never came out of the decoder", path)
  return out


def decode_all(path: str | os.PathLike[str]) -> np.ndarray:
  """Decodes every frame at native size (for tests and inspection): uint8[N, H, W, 3]."""
  path = pathlib.Path(path)
  with _open(path) as container:
    try:
      frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    except av.error.FFmpegError as e:
      raise VideoError(rj.CORRUPT, f"decode failed: {e}", path) from e
  if not frames:
    raise VideoError(rj.CORRUPT, "no decodable frame", path)
  return np.stack(frames)


def load_image(path: str | os.PathLike[str], res: int) -> np.ndarray:
  """Loads a still image as a 1-frame clip: uint8[1, res, res, 3]. Raises VideoError."""
  path = pathlib.Path(path)
  _check_file(path)
  try:
    with Image.open(path) as image:
      return _resize(image, res)[None]
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise VideoError(rj.CORRUPT, f"cannot read image: {e}", path) from e
