"""Index-addressable video input: each process decodes only its rows of the global batch.

The training stream is a function of (seed, position): the example at global position
`k = step * B + row` comes from

  task   t(k)  = a draw with the mixture's rates from a generator seeded by (seed, k)
  item   i(k)  = perm[t, epoch](k mod N_t), epoch = k // N_t

where `perm[t, e]` is a seeded bijection of [0, N_t) evaluated per index in O(1) memory (a Feistel
network with cycle-walking; no list of N_t indices is ever built). A process p of P owns rows
[p * B/P, (p + 1) * B/P) of every global batch (the rows `sharding.host_local_to_global` places
on its devices) and decodes exactly those examples: no clip is decoded by two processes, and the
union of all processes' batches is the 1-process batch. Resuming at step N starts at position
N * B: nothing before it is read or decoded, so the data position in a checkpoint is the step.

A clip that cannot be decoded (counted in the task's rejects) is replaced by a deterministic
substitute (the item at the next probe of the same permutation), so every process and every
restart agrees on what fills the row. The random temporal window of item i is drawn from a
generator seeded by (seed, task, i): a clip keeps its window across epochs and restarts (the
demo's in-memory cache relies on it).

Decoding runs in a thread pool (PyAV releases the GIL while FFmpeg decodes) with at most
`prefetch` examples in flight: host memory is bounded by `prefetch` decoded clips whatever the
number of workers, and the item lists are built once per process (not per worker).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import seqio
import tensorflow as tf

from data import preprocessors as pp
from data import rejects as rj
from data import tfds_builders as tb
from data import watchdog
from data.rejects import Rejects

Example = dict[str, Any]
MAX_PROBES = 64  # Consecutive bad clips tolerated at one position before the stream gives up.


def digest(*parts: Any) -> int:
  """A 64-bit integer digest of `parts` (stable across processes and Python runs)."""
  return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class Permutation:
  """A seeded bijection of [0, n), evaluated per index in O(1) time and memory.

  A 4-round Feistel network on the smallest even power of two >= n, with cycle-walking (values
  >= n are permuted again until they fall inside [0, n)); the round function is a keyed hash.
  """

  def __init__(self, n: int, key: int):
    if n < 1:
      raise ValueError(f"a permutation needs n >= 1, got {n}")
    self.n = n
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    self._half = bits // 2
    self._mask = (1 << self._half) - 1
    self._keys = [digest(key, r) for r in range(4)]

  def _round(self, x: int, k: int) -> int:
    h = (x * 0x9E3779B97F4A7C15 + k) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 32
    return h & self._mask

  def _encrypt(self, x: int) -> int:
    left, right = x >> self._half, x & self._mask
    for k in self._keys:
      left, right = right, left ^ self._round(right, k)
    return (left << self._half) | right

  def __call__(self, i: int) -> int:
    if not 0 <= i < self.n:
      raise IndexError(f"index {i} outside [0, {self.n})")
    x = self._encrypt(i)
    while x >= self.n:
      x = self._encrypt(x)
    return x


class Items(Protocol):
  """What the stream needs of one task's split: random access to decoded examples.

  Implemented by IndexedItems (media files listed by a reader) and by prepared shards
  (data.prepared). `decode(i, seed)` must be a pure function of (i, seed) and the data; it returns
  None for a rejected item, counted in `rejects`.
  """
  name: str
  rejects: Rejects

  def __len__(self) -> int: ...

  def decode(self, i: int, seed: int) -> Example | None: ...

  def describe(self, i: int) -> str: ...


@dataclasses.dataclass
class IndexedItems:
  """One split of a task: its items (built once, on first use) and how to decode one.

  Attributes:
    name: task name (for messages and the window seed).
    items_fn: () -> the split's ClipItems (bad rows counted by the reader).
    sampling: the split's frame sampling.
    rejects: where undecodable clips are counted.
  """
  name: str
  items_fn: Callable[[], Iterable[tb.ClipItem]]
  sampling: tb.Sampling
  rejects: Rejects
  _items: list[tb.ClipItem] | None = None
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

  @property
  def items(self) -> list[tb.ClipItem]:
    with self._lock:
      if self._items is None:
        self._items = list(self.items_fn())
        if not self._items:
          raise ValueError(f"{self.name}: no usable item (rejected rows: {self.rejects.counts})")
      return self._items

  def __len__(self) -> int:
    return len(self.items)

  def decode(self, i: int, seed: int) -> Example | None:
    """Item i with its frames (its window drawn from (seed, task, i)), or None if rejected."""
    return tb.decode_item(self.items[i], self.sampling, window_rng(seed, self.name, i),
                          self.rejects)

  def describe(self, i: int) -> str:
    """Item i's media file (for reject records)."""
    return str(self.items[i].path)


def window_rng(seed: int, name: str, i: int) -> np.random.Generator:
  """The generator of item i's random temporal window: fixed per (seed, task, item)."""
  return np.random.default_rng([seed & 0xFFFFFFFF, digest(name) & 0xFFFFFFFF, i])


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where global position k's example comes from: task `task`, item `item` (after probing past
  `probes` rejected clips)."""
  position: int
  task: int
  item: int


class Order:
  """The stream's order: position -> (task, item candidates), a pure function of the seed."""

  def __init__(self, sizes: Sequence[int], rates: Sequence[float], seed: int):
    if len(sizes) != len(rates) or not sizes:
      raise ValueError(f"one rate per task: sizes {list(sizes)}, rates {list(rates)}")
    r = np.asarray(rates, np.float64)
    if (r < 0).any() or r.sum() <= 0:
      raise ValueError(f"mixture rates must be >= 0 with a positive sum, got {list(rates)}")
    self.sizes = tuple(int(n) for n in sizes)
    self._cdf = np.cumsum(r / r.sum())
    self.seed = int(seed)
    self._perms: dict[tuple[int, int], Permutation] = {}
    self._lock = threading.Lock()

  def task(self, k: int) -> int:
    if len(self.sizes) == 1:
      return 0
    u = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x7A5C, k]).random()
    return int(min(np.searchsorted(self._cdf, u, side="right"), len(self.sizes) - 1))

  def _perm(self, t: int, epoch: int) -> Permutation:
    with self._lock:
      perm = self._perms.get((t, epoch))
      if perm is None:
        if len(self._perms) > 64:  # Only the current epochs are in use.
          self._perms.clear()
        perm = self._perms[(t, epoch)] = Permutation(self.sizes[t], digest(self.seed, t, epoch))
      return perm

  def candidates(self, k: int) -> Iterator[tuple[int, int]]:
    """(task, item) for position k, then its substitutes should that item be rejected."""
    t = self.task(k)
    n = self.sizes[t]
    for probe in range(min(MAX_PROBES, n)):
      j = k + probe * (n // 2 + 1)  # probes walk the same epoch's permutation
      yield t, self._perm(t, k // n)(j % n)


@dataclasses.dataclass
class Stats:
  """What this process decoded (for tests and progress lines)."""
  decoded: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  substituted: int = 0  # positions whose first item was rejected
  timed_out: int = 0  # decodes abandoned by the watchdog


@dataclasses.dataclass
class _Position:
  """A position of the window: its candidates and the decode of the current one."""
  k: int
  candidates: Iterator[tuple[int, int]]
  job: watchdog.Job | None = None
  current: tuple[int, int] = (0, 0)
  probes: int = 0


class Stream:
  """This process's examples of the global training stream, from any step, decoded in parallel.

  Args:
    tasks: the mixture's tasks (one split each).
    rates: their sampling rates (any positive scale).
    seed: the stream's seed.
    global_batch: examples per step over all processes.
    process_index, process_count: this process and the job size; global_batch % count == 0.
    workers: decodes running at once.
    prefetch: positions decoded ahead at most (bounds host memory); default 2 local batches.
    cache: keep decoded items in memory (only for data that fits: the demo world).
    time_limit_s: a decode still running after this long is abandoned (its thread left behind,
      its slot given to the next decode) and the clip rejected as `decode_timeout`: the watchdog
      for stalls data.video's own limit cannot see (a read blocked in the kernel).
  """

  def __init__(self, tasks: Sequence[Items], rates: Sequence[float], *, seed: int,
               global_batch: int, process_index: int, process_count: int, workers: int = 1,
               prefetch: int = 0, cache: bool = False, time_limit_s: float = 300.0):
    if global_batch % process_count:
      raise ValueError(f"global batch {global_batch} is not divisible by {process_count} "
                       "processes")
    if workers < 1:
      raise ValueError(f"decode workers must be >= 1, got {workers}")
    self.tasks = list(tasks)
    self.order = Order([len(t) for t in self.tasks], rates, seed)
    self.seed = int(seed)
    self.global_batch = global_batch
    self.local_batch = global_batch // process_count
    self.process_index = process_index
    self.workers = workers
    self.prefetch = prefetch or max(2 * self.local_batch, workers)
    self.time_limit_s = time_limit_s
    self.stats = Stats()
    self._lock = threading.Lock()
    self._cache: dict[tuple[int, int], Example | None] | None = {} if cache else None

  def positions(self, step: int) -> range:
    """The global positions of this process's rows of global batch `step` (0-based)."""
    first = step * self.global_batch + self.process_index * self.local_batch
    return range(first, first + self.local_batch)

  def _decode(self, t: int, i: int) -> Example | None:
    if self._cache is not None:
      with self._lock:
        if (t, i) in self._cache:
          return self._cache[(t, i)]
    with self._lock:
      self.stats.decoded[(t, i)] += 1
    example = self.tasks[t].decode(i, self.seed)
    if self._cache is not None:
      with self._lock:
        self._cache[(t, i)] = example
    return example

  def examples(self, start_step: int) -> Iterator[tuple[int, Example]]:
    """(task, raw example) of this process's rows of steps start_step, start_step + 1, ...,
    in row order; up to `prefetch` positions are decoded ahead, `workers` at a time. A rejected
    or abandoned clip is replaced by the position's next candidate."""
    def my_positions() -> Iterator[int]:
      step = start_step
      while True:
        yield from self.positions(step)
        step += 1

    pool = watchdog.Pool(self.workers)

    def submit(pos: _Position) -> None:
      try:
        pos.current = next(pos.candidates)
      except StopIteration:
        raise RuntimeError(self._exhausted(pos.k)) from None
      pos.job = pool.submit(self._decode, *pos.current)

    positions = my_positions()
    window: collections.deque[_Position] = collections.deque()
    try:
      yield from self._in_order(window, positions, submit)
    finally:  # The consumer stopped: decodes not started yet are dropped.
      pool.cancel([pos.job for pos in window if pos.job is not None])

  def _in_order(self, window: collections.deque[_Position], positions: Iterator[int],
                submit: Callable[[_Position], None]) -> Iterator[tuple[int, Example]]:
    while True:
      while len(window) < self.prefetch:
        k = next(positions)
        window.append(_Position(k, self.order.candidates(k)))
        submit(window[-1])
      head = window[0]
      assert head.job is not None
      t, i = head.current
      try:
        example = head.job.result(self.time_limit_s)
      except watchdog.Abandoned:
        self.stats.timed_out += 1
        self.tasks[t].rejects.add("video", self.tasks[t].describe(i), rj.DECODE_TIMEOUT,
                                  f"no result after {self.time_limit_s:.0f} s (input watchdog)")
        example = None
      if example is None:  # Rejected (counted by the task) or abandoned: the next candidate.
        head.probes += 1
        submit(head)
        continue
      if head.probes:
        self.stats.substituted += 1
      window.popleft()
      yield t, example

  def _exhausted(self, k: int) -> str:
    task = self.tasks[self.order.task(k)]
    return (f"position {k}: {MAX_PROBES} candidate clips of task {task.name} were rejected in a "
            f"row ({task.rejects.counts}); is the video store reachable?")


# Preprocessors that turn one item into several examples (or none): a stream position addresses
# one example, so tasks using them cannot be read by index.
ONE_TO_MANY = (pp.flatten_captions, pp.flatten_nextqa)


def check_one_to_one(task: seqio.Task) -> None:
  """Raises ValueError naming the preprocessor if `task` makes several examples of one item."""
  for fn in task.preprocessors:
    base = getattr(fn, "func", fn)
    if base in ONE_TO_MANY:
      raise ValueError(f"task {task.name}: preprocessor {base.__name__} makes several examples "
                       "of one item; data.process_split=indexed reads one example per item (use "
                       "slice or shard for this task)")


def dataset(stream: Stream, tasks: Sequence[seqio.Task], start_step: int) -> tf.data.Dataset:
  """This process's examples from `start_step` on, in row order, through each task's seqio
  preprocessors (untrimmed, as `get_dataset(trim_output_features=False)` gives them).

  Task t's raw examples go through task t's preprocessors in a dataset of their own; a choice
  dataset of the positions' tasks interleaves them back into position order.
  """
  if len(tasks) != len(stream.tasks):
    raise ValueError(f"{len(tasks)} seqio tasks for a stream of {len(stream.tasks)}")
  for task in tasks:
    check_one_to_one(task)
  source = stream.examples(start_step)
  lock = threading.Lock()
  waiting: list[collections.deque[Example]] = [collections.deque() for _ in tasks]

  def raw(t: int) -> Iterator[Example]:
    t = int(t)
    while True:
      with lock:
        while not waiting[t]:
          u, example = next(source)
          waiting[u].append(example)
        example = waiting[t].popleft()
      yield example

  def preprocessed(t: int, task: seqio.Task) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_generator(raw, args=(t,),
                                        output_signature=task.source.output_signature)
    ds = task.preprocess_precache(ds, seed=stream.seed)
    return task.preprocess_postcache(ds, sequence_length=None, seed=stream.seed)

  streams = [preprocessed(t, task) for t, task in enumerate(tasks)]
  if len(streams) == 1:
    return streams[0]

  def choices() -> Iterator[int]:
    step = start_step
    while True:
      for k in stream.positions(step):
        yield stream.order.task(k)
      step += 1

  choice = tf.data.Dataset.from_generator(choices, output_signature=tf.TensorSpec([], tf.int64))
  return tf.data.Dataset.choose_from_datasets(streams, choice, stop_on_empty_dataset=True)


def from_provider(provider: seqio.DatasetProviderBase, split: str, *, seed: int,
                  global_batch: int, process_index: int, process_count: int,
                  **options: Any) -> tuple[Stream, list[seqio.Task]]:
  """The Stream of a registered task or mixture (its rates), and its tasks in stream order.

  `options` are the Stream's (workers, prefetch, cache, time_limit_s).
  """
  if isinstance(provider, seqio.Mixture):
    tasks = list(provider.tasks)
    rates = [float(provider.get_rate(t)) for t in tasks]
  else:
    tasks, rates = [provider], [1.0]
  items = []
  for task in tasks:
    check_one_to_one(task)
    if not hasattr(task.source, "indexed"):
      raise ValueError(f"task {task.name}: its source ({type(task.source).__name__}) has no "
                       "random access (e.g. prepared TFDS shards); use data.process_split=slice "
                       "or shard")
    items.append(task.source.indexed(split, task.name))
  stream = Stream(items, rates, seed=seed, global_batch=global_batch, process_index=process_index,
                  process_count=process_count, **options)
  return stream, tasks
