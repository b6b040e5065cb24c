"""The demo world's words and physics: shapes, colours, sizes, directions, walls, event kinds and
their sampling weights, timing, Kinetics labels, prompts, NExT-QA types, the writer's verbs, and
the script types (Actor, Event, Clip) that every other module of the world passes around.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from data.demo_world import render as wr

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 90, 225),
    "yellow": (235, 195, 20), "purple": (150, 60, 200)}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 8.0, "big": 12.0}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
WALLS = {"left": "left", "right": "right", "top": "up", "bottom": "down"}  # wall -> direction
EVENT_KINDS = ("move", "grow", "shrink", "appear", "disappear", "change_colour", "bounce", "stop")
# Sampling weight of each next event (per actor; a kind's weight is split over its variants):
# mostly changes of colour, size and presence, which the demo models learn to see; motion is the
# rarer part. Why these values: docs/demo_results.md.
EVENT_WEIGHTS = {"move": 0.08, "grow": 0.20, "shrink": 0.20, "appear": 0.10, "disappear": 0.10,
                 "change_colour": 0.40, "bounce": 0.05, "stop": 0.08}
# Share of clips with 1, 2 and 3 actors and with 1, 2 and 3 events: mostly one actor doing one
# thing, which the demo VLM learns to name. Why these values: docs/demo_results.md.
ACTORS_P = (0.6, 0.3, 0.1)
EVENTS_P = (0.6, 0.3, 0.1)
KINETICS_ACTORS_P = (0.3, 0.4, 0.3)  # Kinetics-style clips: one labelled action, 0-2 bystanders.
INVERSE_KIND = {"grow": "shrink", "shrink": "grow", "appear": "disappear",
                "disappear": "appear", "move": "move", "change_colour": "change_colour",
                "bounce": "bounce"}

NUM_FRAMES = 16
FPS = wr.FPS
MID_FRAME = 8
SIM_FRAMES = NUM_FRAMES + 1  # Frames 0..16: a pair partner shows frames 16..1 of its twin.
LAST = SIM_FRAMES - 1
FRAME_MAX = wr.FRAME_SIZE - 1

KINETICS_LABELS = ("moving left", "moving right", "moving up", "moving down", "growing",
                   "shrinking", "appearing", "disappearing", "changing colour", "bouncing",
                   "colliding")
PROMPTS = ("generate the alt-text:", "Generate the alt-text:", "answer in en:", "Answer in en:")
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
NEXTQA_TYPES = ("CW", "CH", "TN", "TC", "DL", "DB", "DC", "DO")


@dataclasses.dataclass(frozen=True)
class Actor:
  """An actor's attributes at the first frame of its clip."""
  shape: str
  colour: str
  size: str
  visible: bool


@dataclasses.dataclass(frozen=True)
class Event:
  """One event on frames [f0, f1] of the simulated timeline (0..16, 4 fps).

  kind-specific fields: direction (move, stop; bounce: direction towards the wall), wall and
  fc (contact frame) for bounce, src/dst colours for change_colour, target actor for stop.
  """
  kind: str
  actor: int
  f0: int
  f1: int
  direction: str | None = None
  wall: str | None = None
  fc: int | None = None
  src: str | None = None
  dst: str | None = None
  target: int | None = None
  amount: float = 0.0  # pixels travelled (move, stop) or speed (bounce)

  def key(self) -> tuple:
    return (self.kind, self.actor, self.direction, self.wall, self.dst, self.target)


@dataclasses.dataclass
class Clip:
  """A clip's script, its simulated tracks (SIM_FRAMES long) and where it goes."""
  actors: list[Actor]
  events: list[Event]
  tracks: tuple[wr.Track, ...]
  pair_id: int | None = None
  clip_id: str = ""
  dataset: str = ""
  subset: str = ""
  split: str = ""
  file: str = ""
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)

VERB_FORMS = {
    "move": ("moves", "moving"), "go": ("goes", "going"), "slide": ("slides", "sliding"),
    "travel": ("travels", "traveling"), "grow": ("grows", "growing"), "get": ("gets", "getting"),
    "become": ("becomes", "becoming"), "shrink": ("shrinks", "shrinking"),
    "appear": ("appears", "appearing"), "show": ("shows", "showing"), "fade": ("fades", "fading"),
    "pop": ("pops", "popping"), "vanish": ("vanishes", "vanishing"),
    "disappear": ("disappears", "disappearing"), "turn": ("turns", "turning"),
    "change": ("changes", "changing"), "bounce": ("bounces", "bouncing"),
    "hit": ("hits", "hitting"), "stop": ("stops", "stopping"), "stay": ("stays", "staying"),
}
SIZE_WORDS = {"big": ("big", "large"), "small": ("small", "little")}
# Event kind -> the present-tense verb that opens its canonical phrase ("it turns blue"). A stop
# has no verb of its own: its canonical phrase opens with "moves" ("moves left and stops ...").
EVENT_VERBS = {kind: VERB_FORMS[verb][0] for kind, verb in (
    ("move", "move"), ("grow", "grow"), ("shrink", "shrink"), ("appear", "appear"),
    ("disappear", "disappear"), ("change_colour", "turn"), ("bounce", "bounce"))}
# Word -> the direction it names: the directions, their "-wards" forms and the walls.
DIRECTION_WORDS = {"left": "left", "leftwards": "left", "right": "right", "rightwards": "right",
                   "up": "up", "upwards": "up", "top": "up", "down": "down", "downwards": "down",
                   "bottom": "down"}
# Event kind -> word stems that name it: a word names the kind when it starts with one of them.
# Not every phrasing is covered: "shows up", "pops up" and "fades in" (appear) start with no appear
# stem, and "fades in" starts with disappear's "fad".
EVENT_STEMS = {"move": ("mov", "slid", "travel", "going", "goes"),
               "grow": ("grow", "bigger", "larger"), "shrink": ("shrink", "smaller"),
               "appear": ("appear", "popping", "showing"),
               "disappear": ("disappear", "fad", "vanish"),
               "change_colour": ("turn", "chang", "becom"), "bounce": ("bounc",),
               "stop": ("stop",)}
