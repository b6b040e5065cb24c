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
* Each frame is converted to RGB, turned upright by the stream's display matrix (the rotation
  and mirroring a phone records instead of rotating the pixels: a clip coded 64x48 and tagged
  "rotate 90" is shown, and decoded, as 48x64), then resized to res x res (aspect ratio not kept,
  as PaliGemma does) with PIL bilinear resampling, which is antialiased when shrinking.
* Long files: all packets are demuxed (cheap: no decoding) to get the timestamps, then decoding
  starts at the last keyframe at or before the first sampled frame (container.seek) instead of
  at frame 0. The frames are the same as decoding from the start (same timestamps, same pixels);
  when a demuxer lands elsewhere than asked, the clip is decoded again from the start.

Limits, so that one file cannot block or exhaust a long job (module constants read at each call,
so every caller (seqio tasks, TFDS builders, auto-labeling) gets them without configuration;
each can be overridden per call):

* TIME_LIMIT_S: wall time for one clip (opening, demuxing and decoding), checked between
  packets and frames, and given to FFmpeg as its open/read timeout -> "decode_timeout".
* MAX_DURATION_S: the file's duration (from the header, then from the packet times) ->
  "too_long".
* MAX_PIXELS: width * height of the coded frames -> "too_large".

Errors are `VideoError(reason, detail, path)` with reason one of data.rejects' constants
(missing_file, empty_file, corrupt, no_video_stream, unsupported_codec, too_short, empty_segment,
too_long, too_large, decode_timeout); callers skip the clip and count the reason.
"""
from __future__ import annotations

import bisect
import dataclasses
import fractions
import math
import os
import pathlib
import time
from typing import Literal

import av
import numpy as np
from PIL import Image

from data import rejects as rj

Mode = Literal["uniform", "random"]
_EPS = 1e-6

# Per-clip limits (see the module docstring). Generous: the demo clips are 64x64 and 4 s, real
# web clips are minutes long and at most 4K; a 6-hour or larger-than-8K-UHD file is not a clip.
TIME_LIMIT_S = 120.0
MAX_DURATION_S = 6 * 3600.0
MAX_PIXELS = 7680 * 4320

_now = time.monotonic  # The clock of the per-clip deadlines (a test replaces it to fake a stall).


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


@dataclasses.dataclass(frozen=True)
class _Limits:
  """The limits one call runs under (module defaults filled in)."""
  time_limit_s: float
  max_duration_s: float
  max_pixels: float

  @classmethod
  def of(cls, time_limit_s: float | None, max_duration_s: float | None,
         max_pixels: float | None) -> "_Limits":
    return cls(TIME_LIMIT_S if time_limit_s is None else float(time_limit_s),
               MAX_DURATION_S if max_duration_s is None else float(max_duration_s),
               MAX_PIXELS if max_pixels is None else float(max_pixels))


class _Deadline:
  """The wall-time budget of one clip; check() raises decode_timeout once it is spent."""

  def __init__(self, limit_s: float, path: pathlib.Path):
    self.limit_s, self.path = limit_s, path
    self.end = _now() + limit_s

  def remaining(self) -> float | None:
    """Seconds left for FFmpeg's own open/read timeout (None: no limit)."""
    return None if math.isinf(self.limit_s) else max(0.0, self.end - _now())

  def check(self, stage: str) -> None:
    if _now() >= self.end:
      raise VideoError(rj.DECODE_TIMEOUT, f"{stage} ran past the {self.limit_s:g} s limit",
                       self.path)


def _ffmpeg_error(e: av.error.FFmpegError, stage: str, path: pathlib.Path,
                  deadline: _Deadline | None) -> VideoError:
  """The reject for an FFmpeg error: its interrupt (our timeout), a missing decoder, or corrupt."""
  if isinstance(e, av.error.ExitError) and deadline is not None:
    return VideoError(rj.DECODE_TIMEOUT, f"{stage} interrupted after the {deadline.limit_s:g} s "
                      f"limit: {e}", path)
  if isinstance(e, av.error.DecoderNotFoundError):
    return VideoError(rj.UNSUPPORTED_CODEC, f"{stage}: {e}", path)
  return VideoError(rj.CORRUPT, f"{stage} failed: {e}", path)


def _check_file(path: pathlib.Path) -> None:
  if not path.exists():
    raise VideoError(rj.MISSING_FILE, "file does not exist", path)
  if not path.is_file():
    raise VideoError(rj.MISSING_FILE, "not a regular file", path)
  if path.stat().st_size == 0:
    raise VideoError(rj.EMPTY_FILE, "zero-byte file", path)


def _open(path: pathlib.Path, deadline: _Deadline | None = None) -> av.container.InputContainer:
  """Opens a file whose first video stream has a decoder in this FFmpeg build."""
  _check_file(path)
  timeout = deadline.remaining() if deadline is not None else None
  try:
    container = av.open(str(path), mode="r", timeout=timeout)
  except av.error.ExitError as e:
    raise _ffmpeg_error(e, "opening", path, deadline) from e
  except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
    raise VideoError(rj.CORRUPT, f"cannot open: {e}", path) from e
  if not container.streams.video:
    container.close()
    raise VideoError(rj.NO_VIDEO_STREAM, "container has no video stream", path)
  if container.streams.video[0].codec_context is None:  # FFmpeg found no decoder for the codec.
    container.close()
    raise VideoError(rj.UNSUPPORTED_CODEC, "no decoder for the video stream's codec in this "
                     f"FFmpeg build (libavcodec {av.library_versions['libavcodec']})", path)
  return container


def _check_size(width: int, height: int, limits: _Limits, path: pathlib.Path) -> None:
  if width * height > limits.max_pixels:
    raise VideoError(rj.TOO_LARGE, f"{width}x{height} frames, more than "
                     f"{limits.max_pixels:.0f} pixels", path)


@dataclasses.dataclass(frozen=True)
class _Packets:
  """What demuxing the video stream tells (no decoding).

  Attributes:
    pts: sorted presentation timestamps of the video packets (stream time base).
    keyframes: sorted (pts, seek timestamp) of the keyframe packets; the seek timestamp is
      min(pts, dts), where a seek (to the keyframe at or before it) lands on this keyframe for
      demuxers that index by dts (mp4) and on it or an earlier one for those that index by pts.
    time_base: the stream's time base.
    rate: average frame rate (0 when unknown).
    width, height: coded frame size.
  """
  pts: list[int]
  keyframes: list[tuple[int, int]]
  time_base: fractions.Fraction
  rate: float
  width: int
  height: int


def _demux(path: pathlib.Path, limits: _Limits, deadline: _Deadline) -> _Packets:
  """Demuxes the video stream, enforcing the size and duration caps and the deadline."""
  with _open(path, deadline) as container:
    stream = container.streams.video[0]
    if stream.time_base is None:
      raise VideoError(rj.CORRUPT, "video stream without a time base", path)
    time_base = stream.time_base
    width, height = stream.codec_context.width, stream.codec_context.height
    _check_size(width, height, limits, path)
    # The header's duration first: a too-long file is rejected without reading it.
    if stream.duration:
      header_s = float(stream.duration * time_base)
    else:
      header_s = container.duration / av.time_base if container.duration else 0.0
    if header_s > limits.max_duration_s:
      raise VideoError(rj.TOO_LONG, f"{header_s:.1f} s long (header), more than "
                       f"{limits.max_duration_s:g} s", path)
    max_span = limits.max_duration_s / time_base  # In time-base units.
    pts: list[int] = []
    keyframes: list[tuple[int, int]] = []
    lowest = None
    try:
      for packet in container.demux(stream):
        deadline.check("demuxing")
        if packet.size == 0:  # flush packet
          continue
        if packet.pts is None:
          raise VideoError(rj.CORRUPT, "video packet without a timestamp", path)
        p = int(packet.pts)
        pts.append(p)
        if packet.is_keyframe:
          keyframes.append((p, p if packet.dts is None else min(p, int(packet.dts))))
        lowest = p if lowest is None else min(lowest, p)
        if p - lowest > max_span:  # The header did not tell (or lied): stop reading here.
          raise VideoError(rj.TOO_LONG, f"packets span more than {limits.max_duration_s:g} s",
                           path)
    except av.error.FFmpegError as e:
      raise _ffmpeg_error(e, "demux", path, deadline) from e
    rate = float(stream.average_rate) if stream.average_rate else 0.0
  if not pts:
    raise VideoError(rj.CORRUPT, "no video packets", path)
  pts.sort()
  keyframes.sort()
  return _Packets(pts, keyframes, time_base, rate, width, height)


def _orientation(frame: av.VideoFrame) -> tuple[Image.Transpose, ...]:
  """PIL transposes that turn a decoded frame upright, from its display matrix side data.

  FFmpeg's matrix [a b u; c d v; x y w] (int32, a..d in 16.16 fixed point) maps a source pixel
  (p, q) (x right, y down) to the displayed (a p + c q, b p + d q). It is snapped to the nearest
  of the 8 axis-aligned orientations (rotations by multiples of 90 degrees, with or without a
  mirror), as FFmpeg's command-line autorotation does. No matrix: () (the frame as coded).
  """
  side = frame.side_data.get("DISPLAYMATRIX")
  if side is None:
    return ()
  m = np.frombuffer(bytes(side), np.int32)
  if m.size != 9:
    return ()
  a, b, c, d = (int(m[0]), int(m[1]), int(m[3]), int(m[4]))
  ops: list[Image.Transpose] = []
  if abs(a) + abs(d) >= abs(b) + abs(c):  # Axes kept (0 or 180 degrees): x' ~ a p, y' ~ d q.
    if a < 0:
      ops.append(Image.Transpose.FLIP_LEFT_RIGHT)
    if d < 0:
      ops.append(Image.Transpose.FLIP_TOP_BOTTOM)
  else:  # Axes swapped (90 or 270 degrees): x' ~ c q, y' ~ b p.
    ops.append(Image.Transpose.TRANSPOSE)
    if c < 0:
      ops.append(Image.Transpose.FLIP_LEFT_RIGHT)
    if b < 0:
      ops.append(Image.Transpose.FLIP_TOP_BOTTOM)
  return tuple(ops)


def _upright(frame: av.VideoFrame) -> Image.Image:
  """The decoded frame as a PIL image as it is meant to be shown (display matrix applied)."""
  image = frame.to_image()
  for op in _orientation(frame):
    image = image.transpose(op)
  return image


def _frame_period(times: np.ndarray, rate: float) -> float:
  if rate > 0:
    return 1.0 / rate
  if len(times) > 1:
    return float(np.median(np.diff(times)))
  return 0.0


def _check_duration(duration_s: float, limits: _Limits, path: pathlib.Path) -> None:
  if duration_s > limits.max_duration_s:
    raise VideoError(rj.TOO_LONG, f"{duration_s:.1f} s long, more than "
                     f"{limits.max_duration_s:g} s", path)


def probe(path: str | os.PathLike[str], *, time_limit_s: float | None = None,
          max_duration_s: float | None = None, max_pixels: int | None = None) -> VideoInfo:
  """Stream facts of a video file by demuxing only, under the same limits as decode_frames
  (None: the module's TIME_LIMIT_S, MAX_DURATION_S, MAX_PIXELS). Raises VideoError."""
  path = pathlib.Path(path)
  limits = _Limits.of(time_limit_s, max_duration_s, max_pixels)
  packets = _demux(path, limits, _Deadline(limits.time_limit_s, path))
  pts, time_base = packets.pts, packets.time_base
  times = np.array([float((p - pts[0]) * time_base) for p in pts], np.float64)
  duration = float(times[-1]) + _frame_period(times, packets.rate)
  _check_duration(duration, limits, path)
  return VideoInfo(num_frames=len(pts), width=packets.width, height=packets.height,
                   fps=packets.rate, duration_s=duration, times_s=times)


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


class _Overshot(Exception):
  """A seek landed past a frame it had to give: decode again from the start."""


def _seek_target(keyframes: list[tuple[int, int]], first_needed: int,
                 first_pts: int) -> int | None:
  """Where to seek for a decode whose first wanted frame has pts `first_needed`: the seek
  timestamp of the last keyframe at or before it, or None (decode from the start) when that
  keyframe is the stream's first frame or no keyframe is known."""
  i = bisect.bisect_right(keyframes, (first_needed, math.inf)) - 1
  if i < 0 or keyframes[i][0] <= first_pts:
    return None
  return keyframes[i][1]


def _decode_wanted(path: pathlib.Path, wanted: dict[int, list[int]], num_frames: int, res: int,
                   seek_to: int | None, limits: _Limits, deadline: _Deadline) -> np.ndarray:
  """uint8[T, res, res, 3]: output slot s gets the frame whose pts maps to s in `wanted`.

  Decodes from the start, or from the keyframe found by seeking to `seek_to`; raises _Overshot
  when after the seek a wanted frame never comes out (the demuxer landed past it).
  """
  pending = dict(wanted)
  first_needed, last_needed = min(pending), max(pending)
  out = np.zeros((num_frames, res, res, 3), np.uint8)
  filled = 0
  with _open(path, deadline) as container:
    stream = container.streams.video[0]
    # One thread per clip: the callers decode many clips at once (decode workers), and FFmpeg's
    # own frame/slice threads would add their buffers per worker (measured with
    # viit_jax.benchmarks.input: 8 workers 243 -> 188 MiB of input memory, same frames/s).
    stream.thread_type = "NONE"
    try:
      if seek_to is not None:
        try:
          container.seek(seek_to, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError as e:  # Not seekable (some demuxers): from the start.
          if isinstance(e, av.error.ExitError):
            raise
          raise _Overshot(f"seek failed: {e}") from e
      for frame in container.decode(stream):
        deadline.check("decoding")
        if frame.pts is None:
          continue
        pts = int(frame.pts)
        if seek_to is not None and pts > first_needed and first_needed in pending:
          raise _Overshot(f"first frame after the seek has pts {pts} > {first_needed}")
        slots = pending.pop(pts, None)
        if slots:
          _check_size(frame.width, frame.height, limits, path)
          pixels = _resize(_upright(frame), res)
          for s in slots:
            out[s] = pixels
          filled += len(slots)
        if not pending or pts > last_needed:
          break
    except av.error.FFmpegError as e:
      raise _ffmpeg_error(e, "decoding", path, deadline) from e
  if pending:
    if seek_to is not None:
      raise _Overshot(f"{len(pending)} timestamps did not come out after the seek")
    raise VideoError(rj.CORRUPT, f"decoded {filled} of {num_frames} sampled frames; "
                     f"{len(pending)} timestamps never came out of the decoder", path)
  return out


@dataclasses.dataclass(frozen=True)
class Timeline:
  """The frames of a clip (or of its segment) as decode_frames samples them.

  Attributes:
    path: the file.
    pts: int[N] sorted presentation timestamps of the clip's frames.
    times: float64[N] seconds of each frame from the clip's first frame.
    duration: D, the clip's duration (last frame's time plus one frame period).
    keyframes, first: where decoding may start (seeking), the file's first timestamp.
  """
  path: pathlib.Path
  pts: list[int]
  times: np.ndarray
  duration: float
  keyframes: list[tuple[int, int]]
  first: int
  limits: "_Limits"
  deadline: "_Deadline"


def timeline(path: str | os.PathLike[str], *, segment: tuple[float, float] | None = None,
             min_frames: int = 1, time_limit_s: float | None = None,
             max_duration_s: float | None = None, max_pixels: int | None = None) -> Timeline:
  """Demuxes a clip's frame times (no decoding); arguments as decode_frames'. The returned
  timeline carries the clip's wall-time deadline on to decode_at. Raises VideoError."""
  path = pathlib.Path(path)
  limits = _Limits.of(time_limit_s, max_duration_s, max_pixels)
  deadline = _Deadline(limits.time_limit_s, path)
  packets = _demux(path, limits, deadline)
  pts, time_base = packets.pts, packets.time_base
  first = pts[0]
  # The whole file's duration (the segment's is shorter): span plus one frame period.
  _check_duration(float((pts[-1] - first) * time_base)
                  + (1.0 / packets.rate if packets.rate > 0 else 0.0), limits, path)
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
  duration = float(times[-1]) + _frame_period(times, packets.rate)
  return Timeline(path, pts, times, duration, packets.keyframes, first, limits, deadline)


def decode_at(clip: Timeline, indices: np.ndarray, res: int, *, seek: bool = True) -> np.ndarray:
  """uint8[len(indices), res, res, 3]: the clip's frames `indices` (into clip.pts, repeats
  allowed), upright and square-resized. With `seek`, decoding starts at the keyframe before the
  first one (the same frames as decoding from the start, which is the fallback)."""
  wanted: dict[int, list[int]] = {}
  for slot, i in enumerate(indices):
    wanted.setdefault(clip.pts[int(i)], []).append(slot)
  n = len(indices)
  seek_to = _seek_target(clip.keyframes, min(wanted), clip.first) if seek else None
  if seek_to is not None:
    try:
      return _decode_wanted(clip.path, wanted, n, res, seek_to, clip.limits, clip.deadline)
    except _Overshot:
      pass  # The demuxer landed past the window: the same frames, decoded from the start.
  return _decode_wanted(clip.path, wanted, n, res, None, clip.limits, clip.deadline)


def decode_frames(path: str | os.PathLike[str], num_frames: int, fps: float, res: int, *,
                  mode: Mode = "uniform", rng: np.random.Generator | None = None,
                  segment: tuple[float, float] | None = None,
                  min_frames: int | None = None, seek: bool = True,
                  time_limit_s: float | None = None, max_duration_s: float | None = None,
                  max_pixels: int | None = None) -> np.ndarray:
  """Decodes T frames sampled at `fps` from a video, upright, square-resized to `res`.

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
    seek: start decoding at the keyframe before the window (same frames, less work on long
      files); False decodes from the first frame (for tests comparing the two).
    time_limit_s: wall-time limit for this clip (None: TIME_LIMIT_S; math.inf: none).
    max_duration_s: reject longer files (None: MAX_DURATION_S).
    max_pixels: reject files with larger frames, width * height (None: MAX_PIXELS).

  Returns:
    uint8[T, res, res, 3] RGB frames.

  Raises:
    VideoError: with reason missing_file, empty_file, corrupt, no_video_stream,
      unsupported_codec, too_short, empty_segment, too_long, too_large or decode_timeout.
  """
  clip = timeline(path, segment=segment,
                  min_frames=num_frames if min_frames is None else min_frames,
                  time_limit_s=time_limit_s, max_duration_s=max_duration_s, max_pixels=max_pixels)
  idx = sample_indices(clip.times, clip.duration, num_frames, fps, mode=mode, rng=rng)
  return decode_at(clip, idx, res, seek=seek)


def decode_or_error(path: str | os.PathLike[str], num_frames: int, fps: float, res: int, *,
                    segment: tuple[float, float] | None = None) -> np.ndarray | VideoError:
  """`decode_frames` of the centred window, or the VideoError saying why not (a decoder failure
  outside PyAV's errors is `corrupt`): for bulk jobs that count bad clips instead of stopping."""
  try:
    return decode_frames(path, num_frames, fps, res, mode="uniform", segment=segment)
  except VideoError as e:
    return e
  except (OSError, ValueError, RuntimeError) as e:
    return VideoError(rj.CORRUPT, f"{type(e).__name__}: {e}", path)


def decode_all(path: str | os.PathLike[str]) -> np.ndarray:
  """Decodes every frame at native size, upright (for tests and inspection): uint8[N, H, W, 3]
  (H, W as displayed: a clip tagged rotated by 90 degrees comes out with its sides swapped)."""
  path = pathlib.Path(path)
  frames = []
  with _open(path) as container:
    try:
      for frame in container.decode(container.streams.video[0]):
        ops = _orientation(frame)
        frames.append(frame.to_ndarray(format="rgb24") if not ops
                      else np.asarray(_upright(frame).convert("RGB"), np.uint8))
    except av.error.FFmpegError as e:
      raise _ffmpeg_error(e, "decoding", path, None) from e
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
