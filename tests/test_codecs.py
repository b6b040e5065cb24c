"""Codecs and containers beyond H.264 yuv420p, made with PyAV's encoders in the test: VP9/WebM,
HEVC in mp4 and mkv, MJPEG and MPEG-4 in AVI, GIF, H.264 4:4:4 at an odd size, variable frame
rate, clips tagged as rotated or mirrored, a 2-hour clip, plus a codec FFmpeg cannot decode, a
larger-than-8K clip and a 7-hour clip. Each decodes with the right frame count and orientation or
is rejected with a named reason: directly (data.video), through the WebVid CSV reader and the
seqio PyAV task, the TFDS builder, and auto-labeling, each stage under a wall-time cap.

Frame content: a 4x4 grid of black/white cells. Six fixed cells pin the orientation (no rotation
or mirror maps them onto themselves) and the other ten hold the frame index mod 1024, readable
after lossy coding, GIF's palette and resizing down to 16x16.
"""
import csv
import dataclasses
import fractions
import pathlib
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest
import seqio
import tensorflow_datasets as tfds

from data import readers
from data import rejects as rj
from data import tasks
from data import tfds_builders as tb
from data import video
from data.rejects import Rejects
from test_autolabel import _all_rows, _args, _config, ckpt  # noqa: F401 (ckpt is a fixture)
from viit_jax import autolabel

STAGE_CAP_S = 300.0  # Wall-time cap of each pipeline stage (they take seconds here).
T, FPS, RES = 8, 2.0, 32  # The sampling of the direct and the seqio/TFDS checks.
WHITE_CELLS = ((0, 0), (0, 1))  # Orientation markers: white...
BLACK_CELLS = ((1, 0), (0, 3), (3, 0), (3, 3))  # ...and black.
BIT_CELLS = ((0, 2), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (2, 3), (3, 1), (3, 2))


def _id(name: str) -> str:
  """A clip's id in the pool: its file name with "_" for "." (hevc.mp4 and hevc.mkv differ)."""
  return name.replace(".", "_")


def _pattern(index: int, height: int, width: int) -> np.ndarray:
  """uint8[height, width, 3]: the marker cells and index mod 1024 on the 4x4 grid, upright."""
  cells = np.zeros((4, 4), bool)
  for rc in WHITE_CELLS:
    cells[rc] = True
  for bit, rc in enumerate(BIT_CELLS):
    cells[rc] = bool((index >> bit) & 1)
  rows = np.minimum(np.arange(height) * 4 // height, 3)
  cols = np.minimum(np.arange(width) * 4 // width, 3)
  return np.repeat((cells[rows][:, cols] * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _read(frame: np.ndarray) -> tuple[bool, int]:
  """(markers in place, index mod 1024) of uint8[H, W, 3], from the centre half of each cell."""
  h, w = frame.shape[:2]
  grey = frame.astype(np.float32).mean(-1)

  def white(r: int, c: int) -> bool:
    cell = grey[(4 * r + 1) * h // 16:(4 * r + 3) * h // 16,
                (4 * c + 1) * w // 16:(4 * c + 3) * w // 16]
    return bool(cell.mean() > 128)

  upright = (all(white(*rc) for rc in WHITE_CELLS)
             and not any(white(*rc) for rc in BLACK_CELLS))
  return upright, sum(int(white(*rc)) << bit for bit, rc in enumerate(BIT_CELLS))


@dataclasses.dataclass(frozen=True)
class Clip:
  """A clip to encode.

  Attributes:
    name: file name (the container follows from its extension); the stem is its id in the pool.
    codec: PyAV encoder; decoder: the FFmpeg decoder that reads it.
    size: (width, height) as displayed.
    num_frames, rate: frame count and frame rate (constant rate).
    pix_fmt, options: the encoder's pixel format and options.
    times: presentation times in seconds (variable frame rate), or None for i / rate.
    rotation, hflip: display matrix (counter-clockwise degrees, then a mirror), or None.
  """
  name: str
  codec: str
  decoder: str
  size: tuple[int, int] = (64, 48)
  num_frames: int = 12
  rate: fractions.Fraction = fractions.Fraction(4)
  pix_fmt: str = "yuv420p"
  options: tuple[tuple[str, str], ...] = ()
  times: tuple[float, ...] | None = None
  rotation: int | None = None
  hflip: bool = False

  @property
  def id(self) -> str:
    return _id(self.name)

  def expected_times(self) -> np.ndarray:
    """float64[num_frames] presentation times relative to the first frame."""
    if self.times is not None:
      return np.array(self.times, np.float64)
    return np.arange(self.num_frames, dtype=np.float64) / float(self.rate)

  def stored(self, index: int) -> np.ndarray:
    """The coded pixels of frame `index`: the upright pattern with the display transform undone
    (shown = mirror(rotate_ccw(coded, rotation)), as FFmpeg's display matrix says)."""
    shown = _pattern(index, self.size[1], self.size[0])
    if self.hflip:
      shown = shown[:, ::-1]
    return np.ascontiguousarray(np.rot90(shown, k=-(self.rotation or 0) // 90))


X264 = (("preset", "veryfast"),)
VFR_TIMES = (0.0, 0.1, 0.15, 0.9, 1.0, 1.7, 2.5, 3.3, 3.35, 3.9, 4.6, 4.65)
DECODED = (
    Clip("vp9.webm", "libvpx-vp9", "vp9", options=(("deadline", "realtime"), ("cpu-used", "8"))),
    Clip("hevc.mp4", "libx265", "hevc", options=(("x265-params", "log-level=error"),)),
    Clip("hevc.mkv", "libx265", "hevc", options=(("x265-params", "log-level=error"),)),
    Clip("mjpeg.avi", "mjpeg", "mjpeg", pix_fmt="yuvj420p"),
    Clip("mpeg4.avi", "mpeg4", "mpeg4"),
    Clip("anim.gif", "gif", "gif", pix_fmt="rgb8"),
    Clip("yuv444_33x47.mp4", "libx264", "h264", size=(33, 47), pix_fmt="yuv444p", options=X264),
    Clip("vfr.mkv", "libx264", "h264", times=VFR_TIMES, options=X264),
    Clip("rotated90.mp4", "libx264", "h264", size=(48, 64), rotation=90, options=X264),
    Clip("rotated270_mirrored.mp4", "libx264", "h264", size=(48, 64), rotation=-90, hflip=True,
         options=X264),
    # 2 hours at one frame per 5 s, a keyframe every 4 frames (with B-frames).
    Clip("long_2h.mp4", "libx264", "h264", size=(32, 32), num_frames=1440,
         rate=fractions.Fraction(1, 5), options=X264 + (("g", "4"),)),
)
TOO_LONG_CLIP = Clip("long_7h.mp4", "libx264", "h264", size=(32, 32), num_frames=1300,
                     rate=fractions.Fraction(1, 20), options=(("preset", "ultrafast"),))
TOO_LARGE_CLIP = Clip("huge_8k.avi", "mjpeg", "mjpeg", size=(7696, 4336), num_frames=1,
                      pix_fmt="yuvj420p")
UNKNOWN_CODEC = "unknown_codec.avi"  # An MJPEG AVI whose FourCC names no codec FFmpeg knows.
REJECTED = {TOO_LONG_CLIP.id: rj.TOO_LONG, TOO_LARGE_CLIP.id: rj.TOO_LARGE,
            _id(UNKNOWN_CODEC): rj.UNSUPPORTED_CODEC}


def _decodable(clip: Clip) -> bool:
  return clip.decoder in av.codecs_available


def write_clip(clip: Clip, path: pathlib.Path) -> pathlib.Path:
  """Encodes `clip` to `path` with PyAV."""
  assert clip.codec in av.codecs_available, f"this PyAV build has no {clip.codec} encoder"
  with av.open(str(path), "w") as container:
    stream = container.add_stream(clip.codec, rate=None if clip.times else clip.rate,
                                  options=dict(clip.options))
    coded = clip.size if (clip.rotation or 0) % 180 == 0 else clip.size[::-1]
    stream.width, stream.height = coded
    stream.pix_fmt = clip.pix_fmt
    if clip.times is not None:  # Variable frame rate: millisecond timestamps set per frame.
      stream.codec_context.time_base = fractions.Fraction(1, 1000)
    if clip.rotation is not None:
      stream.set_display_rotation(clip.rotation, hflip=clip.hflip)
    for i in range(clip.num_frames):
      frame = av.VideoFrame.from_ndarray(clip.stored(i), format="rgb24")
      if clip.times is not None:
        frame.pts, frame.time_base = round(clip.times[i] * 1000), fractions.Fraction(1, 1000)
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> pathlib.Path:
  """A directory with every clip above, the too-long, too-large and unknown-codec files."""
  root = tmp_path_factory.mktemp("codecs")
  for clip in (*DECODED, TOO_LONG_CLIP, TOO_LARGE_CLIP):
    write_clip(clip, root / clip.name)
  mjpeg = (root / "mjpeg.avi").read_bytes()
  assert mjpeg.count(b"MJPG") >= 1
  (root / UNKNOWN_CODEC).write_bytes(mjpeg.replace(b"MJPG", b"QZQZ"))
  return root


class _Counting:
  """An av container that counts decoded frames and seeks (wraps av.open's result)."""

  def __init__(self, container, counts: dict[str, int]):
    self._container, self._counts = container, counts

  def __enter__(self) -> "_Counting":
    return self

  def __exit__(self, *exc) -> None:
    self._container.__exit__(*exc)

  def __getattr__(self, name: str):
    return getattr(self._container, name)

  def seek(self, *args, **kwargs) -> None:
    self._counts["seeks"] += 1
    self._container.seek(*args, **kwargs)

  def decode(self, *args, **kwargs) -> Iterator[av.VideoFrame]:
    for frame in self._container.decode(*args, **kwargs):
      self._counts["frames"] += 1
      yield frame


@pytest.fixture
def counting(monkeypatch) -> dict[str, int]:
  """Counts of frames decoded and seeks made by data.video from here on."""
  counts = {"frames": 0, "seeks": 0}
  real_open = av.open
  monkeypatch.setattr(av, "open", lambda *a, **k: _Counting(real_open(*a, **k), counts))
  return counts


# ------------------------------------------------------------------------------------------------
# data.video directly.


@pytest.mark.parametrize("clip", DECODED, ids=lambda c: c.name)
def test_each_clip_decodes_with_its_frame_count_and_orientation(clips, clip):
  path = clips / clip.name
  if not _decodable(clip):  # A build without this decoder: a named reject, not a crash.
    with pytest.raises(video.VideoError) as e:
      video.decode_frames(path, T, FPS, RES)
    assert e.value.reason == rj.UNSUPPORTED_CODEC
    return
  info = video.probe(path)
  assert info.num_frames == clip.num_frames
  np.testing.assert_allclose(info.times_s, clip.expected_times(), atol=2e-3)
  everything = video.decode_all(path)  # Native size, upright: (width, height) as displayed.
  assert everything.shape == (clip.num_frames, clip.size[1], clip.size[0], 3)
  assert [_read(f) for f in everything] == [(True, i % 1024) for i in range(clip.num_frames)]
  out = video.decode_frames(path, T, FPS, RES)
  assert out.shape == (T, RES, RES, 3) and out.dtype == np.uint8
  expected = video.sample_indices(info.times_s, info.duration_s, T, FPS, mode="uniform")
  assert [_read(f) for f in out] == [(True, int(i) % 1024) for i in expected]


def test_rotation_and_mirror_tags_are_applied(clips):
  for clip in (c for c in DECODED if c.rotation is not None):
    path = clips / clip.name
    with av.open(str(path)) as c:  # As coded: landscape and not upright (the test can fail).
      raw = next(c.decode(video=0))
      assert raw.rotation != 0
      coded = raw.to_ndarray(format="rgb24")
    assert coded.shape == (clip.size[0], clip.size[1], 3)  # 48 high, 64 wide.
    assert not _read(coded)[0]
    first = video.decode_all(path)[0]
    assert first.shape == (clip.size[1], clip.size[0], 3)  # Portrait, as displayed.
    assert _read(first) == (True, 0)
    assert all(_read(f)[0] for f in video.decode_frames(path, 4, 2.0, 16))


def test_variable_frame_rate_samples_by_time(clips):
  clip = next(c for c in DECODED if c.times is not None)
  info = video.probe(clips / clip.name)
  np.testing.assert_allclose(info.times_s, VFR_TIMES, atol=1e-3)
  expected = video.sample_indices(info.times_s, info.duration_s, T, FPS, mode="uniform")
  # Frames taken by index at the average rate would be others: the check has teeth.
  targets = (info.duration_s - T / FPS) / 2 + np.arange(T) / FPS
  by_index = np.clip(np.floor(targets * info.fps + 1e-6), 0, clip.num_frames - 1).astype(int)
  assert list(expected) != list(by_index)
  out = video.decode_frames(clips / clip.name, T, FPS, RES)
  assert [_read(f) for f in out] == [(True, int(i)) for i in expected]


def test_a_codec_ffmpeg_cannot_decode_is_rejected_with_a_reason(clips):
  path = clips / UNKNOWN_CODEC
  for call in (lambda: video.probe(path), lambda: video.decode_frames(path, T, FPS, RES),
               lambda: video.decode_all(path)):
    with pytest.raises(video.VideoError) as e:
      call()
    assert e.value.reason == rj.UNSUPPORTED_CODEC and "no decoder" in e.value.detail


def test_duration_and_size_caps(clips):
  start = time.monotonic()
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(clips / TOO_LARGE_CLIP.name, 1, FPS, RES, min_frames=1)
  assert e.value.reason == rj.TOO_LARGE and "7696x4336" in e.value.detail
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(clips / TOO_LONG_CLIP.name, T, FPS, RES)
  assert e.value.reason == rj.TOO_LONG and "header" in e.value.detail
  assert time.monotonic() - start < 30  # Rejected from the headers: nothing was decoded.
  # Under a higher cap the 7-hour file decodes (it is long, not broken).
  out = video.decode_frames(clips / TOO_LONG_CLIP.name, T, FPS, RES, max_duration_s=8 * 3600.0)
  assert all(_read(f)[0] for f in out)
  # Both caps per call on a small clip (64x48, 3 s).
  small = clips / "mpeg4.avi"
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(small, T, FPS, RES, max_pixels=64 * 48 - 1)
  assert e.value.reason == rj.TOO_LARGE
  with pytest.raises(video.VideoError) as e:
    video.probe(small, max_duration_s=2.5)
  assert e.value.reason == rj.TOO_LONG
  assert video.probe(small, max_duration_s=3.0).duration_s == pytest.approx(3.0)


def test_the_defaults_reject_nothing_of_the_demo_world(demo_world):
  clips = sorted(demo_world.rglob("*.mp4"))
  assert len(clips) > 50
  for path in clips:
    info = video.probe(path)  # The module's default limits.
    assert info.duration_s < video.MAX_DURATION_S / 100
    assert info.width * info.height < video.MAX_PIXELS / 100


LONG_CLIP = DECODED[-1]
SEEK_CLIPS = (  # Frequent and sparse keyframes, B-frames or none, in each container.
    LONG_CLIP,
    dataclasses.replace(LONG_CLIP, name="sparse_keyframes.mp4", options=X264 + (("g", "300"),)),
    Clip("hevc_gop8.mkv", "libx265", "hevc", num_frames=160, options=(
        ("x265-params", "log-level=error:keyint=8:min-keyint=8:scenecut=0"),)),
    Clip("vp9_gop8.webm", "libvpx-vp9", "vp9", num_frames=160, options=(
        ("deadline", "realtime"), ("cpu-used", "8"), ("g", "8"))),
    Clip("mjpeg_all_keyframes.avi", "mjpeg", "mjpeg", num_frames=160, pix_fmt="yuvj420p"),
    Clip("mpeg4_gop8.avi", "mpeg4", "mpeg4", num_frames=160, options=(("g", "8"),)),
)


@pytest.mark.parametrize("clip", SEEK_CLIPS, ids=lambda c: c.name)
def test_seeking_gives_the_frames_of_decoding_from_the_start(clips, tmp_path, clip, counting):
  """Long clips with frequent and sparse keyframes in each container: seek=True (the default)
  and seek=False give the same frames (pixels, so timestamps), reading fewer frames."""
  name = clip.name
  path = clips / name if (clips / name).exists() else write_clip(clip, tmp_path / name)
  info = video.probe(path)
  assert info.num_frames == clip.num_frames
  fps = float(clip.rate) / 2  # Every other frame: windows of 2 T frames.
  calls = [lambda: dict(mode="uniform"),
           lambda: dict(segment=(0.9 * info.duration_s, info.duration_s))]
  calls += [lambda seed=seed: dict(mode="random", rng=np.random.default_rng(seed))
            for seed in range(4)]
  frames = {True: 0, False: 0}
  for kwargs in calls:
    outs = {}
    for seek in (True, False):
      before = counting["frames"]
      outs[seek] = video.decode_frames(path, T, fps, RES, seek=seek, **kwargs())
      frames[seek] += counting["frames"] - before
    np.testing.assert_array_equal(outs[True], outs[False])
    indices = [_read(f) for f in outs[True]]
    assert all(upright for upright, _ in indices)
    steps = np.diff([i for _, i in indices]) % 1024
    assert set(steps.tolist()) <= {0, 2}, indices  # Consecutive samples 2 frames apart.
  assert counting["seeks"] > 0
  assert frames[True] < frames[False], frames


def test_a_seek_that_lands_past_the_window_falls_back_to_the_start(clips, monkeypatch,
                                                                   counting):
  """A demuxer that lands past the asked keyframe (simulated: the seek asks for the last
  keyframe) must not lose frames: the clip is decoded again from the start."""
  path = clips / LONG_CLIP.name
  reference = video.decode_frames(path, T, 0.1, RES, seek=False)
  real_target = video._seek_target
  monkeypatch.setattr(video, "_seek_target",
                      lambda keyframes, first_needed, first_pts: (
                          keyframes[-1][1] if real_target(keyframes, first_needed, first_pts)
                          is not None else None))
  before = dict(counting)
  np.testing.assert_array_equal(video.decode_frames(path, T, 0.1, RES), reference)
  assert counting["seeks"] == before["seeks"] + 1  # It did seek, then decoded from the start.
  assert counting["frames"] - before["frames"] > LONG_CLIP.num_frames // 2 - T


def test_decode_timeout(clips, monkeypatch):
  path = clips / "long_2h.mp4"
  for name in (path.name, "vp9.webm", "anim.gif"):
    with pytest.raises(video.VideoError) as e:
      video.decode_frames(clips / name, T, FPS, RES, time_limit_s=0.0)
    assert e.value.reason == rj.DECODE_TIMEOUT
  # A stalled read, simulated by a clock that jumps 1 s at each look: the limit is checked
  # between packets (demuxing 1440 packets) and between frames (decoding ~720 from the start).
  clock = iter(range(10**9))
  monkeypatch.setattr(video, "_now", lambda: float(next(clock)))
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(path, T, FPS, RES, time_limit_s=100.0)
  assert e.value.reason == rj.DECODE_TIMEOUT and e.value.detail.startswith("demuxing ran past")
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(path, T, FPS, RES, time_limit_s=1600.0, seek=False)
  assert e.value.reason == rj.DECODE_TIMEOUT and e.value.detail.startswith("decoding ran past")
  video.decode_frames(path, T, FPS, RES, time_limit_s=1600.0)  # Seeking fits in the time.


# ------------------------------------------------------------------------------------------------
# The same files through the reader + seqio task, the TFDS builder and auto-labeling.


@pytest.fixture(scope="module")
def pool(clips, tmp_path_factory) -> tuple[pathlib.Path, list[str]]:
  """A WebVid-format root listing every clip; returns (root, ids expected to decode, in order)."""
  root = tmp_path_factory.mktemp("codec_pool")
  (root / "videos").symlink_to(clips)
  names = [c.name for c in DECODED] + [TOO_LONG_CLIP.name, TOO_LARGE_CLIP.name, UNKNOWN_CODEC]
  names.insert(3, names.pop())  # Rejected files between decodable ones.
  names.insert(7, names.pop())
  with (root / "pool.csv").open("w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
    for name in names:
      w.writerow([_id(name), f"videos/{name}", "PT00H00M03S", "p", f"clip {name}"])
  ids = [_id(n) for n in names]
  decoded = [i for i in ids if i not in REJECTED and _decodable(
      next(c for c in DECODED if c.id == i))]
  return root, decoded


def _expected_counts() -> dict[str, int]:
  counts: dict[str, int] = {}
  undecodable = sum(not _decodable(c) for c in DECODED)
  for reason in [*REJECTED.values()] + [rj.UNSUPPORTED_CODEC] * undecodable:
    counts[reason] = counts.get(reason, 0) + 1
  return counts


def _check_frames(clips: pathlib.Path, clip_id: str, frames: np.ndarray) -> None:
  """Frames of a pipeline example are data.video's, upright."""
  clip = next(c for c in DECODED if c.id == clip_id)
  np.testing.assert_array_equal(frames, video.decode_frames(clips / clip.name, T, FPS, RES))
  assert all(_read(f)[0] for f in frames), clip_id


def test_reader_and_seqio_task(demo_world, clips, pool, tmp_path):
  root, decoded = pool
  start = time.monotonic()
  # The reader lists every file (it checks that they exist, not what they hold)...
  rejects = Rejects("reader")
  rows = list(readers.read_webvid(root, "pool.csv", rejects=rejects))
  assert len(rows) == len(DECODED) + len(REJECTED) and rejects.total == 0
  assert all(r.path.is_file() for r in rows)
  # ...and the task decodes them: the undecodable ones are skipped and counted by reason.
  names = tasks.register_real_tasks(
      {"webvid": root}, num_frames=T, fps=FPS, res=RES,
      vocab_path=demo_world / "spm" / "demo.model", name_prefix="codecs_",
      webvid_csv="pool.csv", webvid_path_template="{contentUrl}", rejects_dir=tmp_path)
  out = list(seqio.get_mixture_or_task(names[0]).get_dataset(
      sequence_length={"prefix": 48, "suffix": 48}, split="train",
      shuffle=False).as_numpy_iterator())
  elapsed = time.monotonic() - start
  assert [e["clip_id"].decode() for e in out] == decoded
  assert tasks.task_rejects(names[0]).counts == _expected_counts()
  records = {_id(r.item.rsplit("/", 1)[1]): r.reason
             for r in tasks.task_rejects(names[0]).records}
  assert {k: records[k] for k in REJECTED} == REJECTED
  assert elapsed < STAGE_CAP_S, elapsed
  for e in out:
    _check_frames(clips, e["clip_id"].decode(), e["frames"])


def test_tfds_builder(clips, pool, tmp_path):
  root, decoded = pool
  start = time.monotonic()
  config = tb.make_config(T, FPS, RES, annotations=(("train", "pool.csv"),),
                          path_template="{contentUrl}")
  rejects = Rejects("webvid")
  directory = tb.prepare("webvid", root, tmp_path / "tfds", config, rejects=rejects)
  builder = tfds.builder_from_directory(str(directory))
  out = list(builder.as_dataset(split="train").as_numpy_iterator())
  elapsed = time.monotonic() - start
  assert rejects.counts == _expected_counts()
  assert builder.info.metadata["rejects"] == {"train": _expected_counts()}
  assert [e["clip_id"].decode() for e in out] == decoded
  assert elapsed < STAGE_CAP_S, elapsed
  for e in out:
    _check_frames(clips, e["clip_id"].decode(), e["frames"])


def test_autolabel(ckpt, demo_world, pool, tmp_path):  # noqa: F811 (ckpt: the fixture)
  root, decoded = pool
  start = time.monotonic()
  arg = _args(ckpt, f"corpus.format=webvid,corpus.root={root},corpus.file=pool.csv,"
                    f"corpus.path_template={{contentUrl}},vocab_path={demo_world}/spm/demo.model")
  manifest = autolabel.run(_config(arg), tmp_path)
  elapsed = time.monotonic() - start
  assert manifest is not None
  assert manifest["rejects_per_reason"] == _expected_counts()
  assert manifest["num_captioned"] == len(decoded)
  assert manifest["num_rejected"] == sum(_expected_counts().values())
  rows = _all_rows(tmp_path / "v1")
  assert [r["clip_id"] for r in rows] == decoded
  assert all(len(r["captions"]) == 2 for r in rows)
  assert elapsed < STAGE_CAP_S, elapsed
