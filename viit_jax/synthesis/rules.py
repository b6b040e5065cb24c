"""Question/answer pairs written by rule from narrative text: an offline STAND-IN for an LLM.

This is not a language model and does not pretend to be one. It reads only the narrative text of
a prompt (actor names and descriptions, exactly what an LLM would be given; never the demo world's
hidden state) and fills fixed question patterns:

* temporal: the actor's description is split into an ordered list of actions ("moves left, then
  moves up" -> [moves left, moves up]); questions ask what comes right after/right before an
  action, first or last, or whether one action comes before or after another.
* causal: a "because" clause gives "Why does X <act>?" -> "Because <cause>."; an "in order to /
  so that / to" purpose gives "Why does X <act>?" -> "To <purpose>."; without either, a "how"
  question about the sequence of actions.
* short QA: answers of one or two words: how many actors, an actor's colour, the direction of a
  movement, or whether an actor does an action (yes/no).

Which candidate is used is drawn with a seed per (clip, kind). Real instruction data comes from
the `openai` or `local` back-ends; this one exists so the pipeline runs end to end offline.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
import re

from viit_jax.synthesis import narratives as narratives_lib

_COLOURS = frozenset((
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey",
    "gray", "cyan", "magenta", "violet", "gold", "silver"))
_DIRECTIONS = frozenset(("left", "right", "up", "down", "upward", "upwards", "downward",
                         "downwards", "forward", "forwards", "backward", "backwards"))
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_PRONOUNS = {"he": "he", "she": "she", "it": "it", "they": "they"}
_MALE = frozenset(("man", "boy", "father", "dad", "husband", "gentleman", "guy", "he"))
_FEMALE = frozenset(("woman", "girl", "mother", "mom", "wife", "lady", "she"))
_LEADING_CONNECTORS = re.compile(
    r"^(?:(?:and|then|next|finally|after that|afterwards|at first|first|at the start|"
    r"at the beginning|in the beginning|at the end|in the end|later|now)\s*,?\s+)+",
    re.IGNORECASE)
# "After <another event>, <clause>": an anchor in time for the clause that follows.
_ANCHOR = re.compile(r"^(after|before|once|when|while)\s+(.+?),\s+(.+)$", re.IGNORECASE)
# Clause boundaries inside a sentence: ", then", " then ", ", and", ";", plain commas.
# ..., and "and" before a third-person verb ("moves down and stops").
_CLAUSE_SPLIT = re.compile(
    r"\s*(?:;|,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+then\s+|\s+then\s+|\s+and\s+(?=[a-z]+s\b))\s*",
    re.IGNORECASE)
# "stops when it hits X", "moves left until it hits X": contact as the cause of stopping.
_CONTACT = re.compile(r"\s+(?:when|until|as soon as)\s+(?=it\s+(?:hits|reaches|touches|runs into)\b)",
                      re.IGNORECASE)
_STOP_VERB = re.compile(r"^(?:stops|halts|comes to a stop)\b", re.IGNORECASE)
_ANCHOR_TRIM = re.compile(r"\s+(?:because|when|until|as soon as)\s+", re.IGNORECASE)
_BOUNCE = re.compile(r"^bounces\s+(?:off|back from)\s+the\s+(?:(\w+)\s+)?wall\b", re.IGNORECASE)
_BECAUSE = re.compile(r"\s+because\s+(?:of\s+)?", re.IGNORECASE)
_PURPOSE = re.compile(r"\s+(?:in order to|so as to|so that)\s+", re.IGNORECASE)
_MOVE_VERBS = frozenset(("moves", "goes", "slides", "travels", "walks", "runs", "rolls", "drives",
                         "flies", "swims", "jumps"))
_IRREGULAR_BASE = {"is": "be", "has": "have", "does": "do", "goes": "go", "was": "be"}


@dataclasses.dataclass(frozen=True)
class Action:
  """One clause of an actor's description, subject removed: "moves left"."""
  predicate: str            # third-person present, as written ("moves left")
  cause: str | None         # from "... because <cause>"
  purpose: str | None       # from "... to / in order to / so that <purpose>"
  anchor: tuple[str, str] | None = None   # ("after", "the yellow diamond disappears")


@dataclasses.dataclass(frozen=True)
class Actor:
  name: str                 # "the red circle"
  pronoun: str              # "it" | "he" | "she" | "they"
  actions: tuple[Action, ...]


def _base_form(predicate: str) -> str:
  """"moves left" -> "move left"; "carries it" -> "carry it"; "pushes" -> "push"."""
  verb, _, rest = predicate.partition(" ")
  low = verb.lower()
  if low in _IRREGULAR_BASE:
    base = _IRREGULAR_BASE[low]
  elif low.endswith("ies") and len(low) > 4:
    base = low[:-3] + "y"
  elif re.search(r"(?:ss|sh|ch|x|z|o)es$", low):
    base = low[:-2]
  elif low.endswith("s") and not low.endswith("ss"):
    base = low[:-1]
  else:
    base = low
  return f"{base} {rest}".strip()


def _strip_subject(clause: str, actor_name: str) -> str | None:
  """The predicate of a clause about `actor_name`, or None if the clause is about someone else."""
  clause = _LEADING_CONNECTORS.sub("", clause.strip()).strip()
  low = clause.lower()
  name = actor_name.lower()
  bare = re.sub(r"^(?:the|a|an)\s+", "", name)
  for subject in (name, f"the {bare}", f"a {bare}", f"an {bare}", bare, *_PRONOUNS):
    if low.startswith(subject + " "):
      return clause[len(subject):].strip()
  if re.match(r"^(?:the|a|an)\s", low):   # another subject ("the blue square stops")
    return None
  return clause  # subject carried over from the previous clause ("..., then moves up")


def _pronoun(actor_name: str) -> str:
  toks = set(re.findall(r"[a-z]+", actor_name.lower()))
  if toks & _MALE:
    return "he"
  if toks & _FEMALE:
    return "she"
  if toks & {"people", "children", "men", "women", "kids"}:
    return "they"
  return "it"


def parse_actor(actor: narratives_lib.ActorNarrative) -> Actor:
  """Splits an actor's description into ordered actions (text only)."""
  actions: list[Action] = []
  pending: str | None = None   # "moves left until it hits X": the cause of the next "stops"
  for sentence in re.split(r"(?<=[.!?])\s+", actor.description.strip()):
    sentence = _LEADING_CONNECTORS.sub("", sentence.strip().rstrip(".!?").strip())
    anchor = None
    m = _ANCHOR.match(sentence)
    if m:
      anchor = (m.group(1).lower(), _ANCHOR_TRIM.split(m.group(2), maxsplit=1)[0].strip())
      sentence = m.group(3)
    for clause in _CLAUSE_SPLIT.split(sentence):
      if not clause.strip():
        continue
      cause = purpose = contact = None
      parts = _BECAUSE.split(clause, maxsplit=1)
      if len(parts) == 2:
        clause, cause = parts
      else:
        m = _PURPOSE.search(clause)
        if m and m.start() > 0:
          clause, purpose = clause[:m.start()], clause[m.end():]
      m = _CONTACT.search(clause)
      if m:
        clause, contact = clause[:m.start()], clause[m.end():]
      predicate = _strip_subject(clause, actor.actor_name)
      if not predicate or not re.match(r"^[A-Za-z]", predicate):
        continue
      predicate = predicate[0].lower() + predicate[1:]
      if _STOP_VERB.match(predicate) and cause is None:
        cause, pending = contact or pending, None
      elif contact:
        pending = contact
      actions.append(Action(predicate, cause.strip() if cause else None,
                            purpose.strip() if purpose else None, anchor))
      anchor = None   # it anchors the first clause only
  return Actor(actor.actor_name, _pronoun(actor.actor_name), tuple(actions))


def _cap(text: str) -> str:
  return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
  text = _cap(text.strip())
  return text if text.endswith((".", "!", "?")) else text + "."


def _subject(name: str) -> str:
  """"The red circle" -> "the red circle" (inside a question)."""
  return name[0].lower() + name[1:] if re.match(r"^(?:The|A|An)\s", name) else name


def _is_static(actor: Actor) -> bool:
  """An actor whose only action is staying still ("stays still the whole time")."""
  return all(re.match(r"^(?:stays|remains|sits|stands) still\b", a.predicate.lower())
             for a in actor.actions)


def _active_first(actors: list[Actor]) -> list[Actor]:
  """Actors that do something; all actors if none does."""
  active = [a for a in actors if a.actions and not _is_static(a)]
  return active or [a for a in actors if a.actions]


def temporal_candidates(actors: list[Actor]) -> list[tuple[str, str]]:
  """Every order question the text supports, with its answer."""
  out: list[tuple[str, str]] = []
  for actor in actors:
    acts = [a.predicate for a in actor.actions]
    name, pro = _subject(actor.name), actor.pronoun
    unique = {p for p in acts if acts.count(p) == 1}
    if len(acts) >= 2:
      out.append((f"What does {name} do first?", _sentence(f"{pro} {acts[0]}")))
      out.append((f"What is the last thing {name} does?", _sentence(f"{pro} {acts[-1]}")))
    for i in range(len(acts) - 1):
      if acts[i] in unique:
        out.append((f"What does {name} do right after {pro} {acts[i]}?",
                    _sentence(f"{pro} {acts[i + 1]}")))
      if acts[i + 1] in unique:
        out.append((f"What does {name} do right before {pro} {acts[i + 1]}?",
                    _sentence(f"{pro} {acts[i]}")))
    for i in range(len(acts)):
      for j in range(i + 1, len(acts)):
        if acts[i] in unique and acts[j] in unique:
          out.append((f"Does {name} {_base_form(acts[j])} before or after {pro} {acts[i]}?",
                      "After."))
          out.append((f"Does {name} {_base_form(acts[i])} before or after {pro} {acts[j]}?",
                      "Before."))
    for act in actor.actions:   # across actors: "After the red circle grows, the square ..."
      if not act.anchor:
        continue
      word, event = act.anchor
      if not event.lower().endswith(act.predicate.lower()):   # else the answer is in the question
        out.append((f"What does {name} do {word} {event}?", _sentence(f"{pro} {act.predicate}")))
      if word in ("after", "before"):
        mine = f"{name} {act.predicate}"
        out.append((f"Which happens first: {event}, or {mine}?",
                    _sentence(event if word == "after" else mine)))
  if not out:   # no actor with two actions: ask for the single action as "the first thing"
    for actor in _active_first(actors):
      out.append((f"What does {_subject(actor.name)} do first?",
                  _sentence(f"{actor.pronoun} {actor.actions[0].predicate}")))
  return out


def causal_candidates(actors: list[Actor]) -> list[tuple[str, str]]:
  """Why-questions from because/purpose clauses; how-questions as the fallback."""
  out: list[tuple[str, str]] = []
  for actor in actors:
    name = _subject(actor.name)
    for i, act in enumerate(actor.actions):
      if act.cause:
        out.append((f"Why does {name} {_base_form(act.predicate)}?",
                    _sentence(f"because {act.cause}")))
        m = re.match(r"^it (?:hits|reaches|touches|runs into) (.+)$", act.cause)
        if m and i > 0 and actor.actions[i - 1].predicate.split()[0] in _MOVE_VERBS:
          out.append((f"How does {name} get to {m.group(1)}?",
                      _sentence(f"{actor.pronoun} {actor.actions[i - 1].predicate}")))
      if act.purpose:
        out.append((f"Why does {name} {_base_form(act.predicate)}?",
                    _sentence(f"so that {act.purpose}")))
      m = _BOUNCE.match(act.predicate)
      if m:   # bouncing off a wall reverses the motion
        wall = f"the {m.group(1)} wall" if m.group(1) else "a wall"
        out.append((f"Why does {name} change direction?", _sentence(f"because it hits {wall}")))
  if out:
    return out
  for actor in _active_first(actors):
    acts = [a.predicate for a in actor.actions]
    if len(acts) >= 2:
      out.append((f"How does {_subject(actor.name)} change during the video?",
                  _sentence(f"{actor.pronoun} first {acts[0]} and then {acts[1]}")))
    elif acts:
      out.append((f"How does {_subject(actor.name)} change during the video?",
                  _sentence(f"{actor.pronoun} {acts[0]}")))
  return out


_BECOMES_COLOUR = re.compile(r"^(?:turns|becomes|changes colour to|changes color to|changes to)\s+"
                             r"([a-z]+)\b")
_SIZE_WORDS = {"big": "big", "large": "big", "small": "small", "little": "small"}
_SIZE_CHANGE = re.compile(r"^(?:grows|shrinks|gets|becomes)\b")


def shortqa_candidates(actors: list[Actor]) -> list[tuple[str, str]]:
  """Questions whose answers have one or two lower-case words ("two", "blue", "yes"), as in QA sets."""
  out: list[tuple[str, str]] = []
  if len(actors) < len(_NUMBERS):
    out.append(("How many actors can be seen in the video?", _NUMBERS[len(actors)]))
  nouns = [(re.findall(r"[a-z]+", a.name.lower()) or [""])[-1] for a in actors]
  for actor, noun in zip(actors, nouns):
    words = re.findall(r"[a-z]+", actor.name.lower())
    preds = [a.predicate.lower() for a in actor.actions]
    unique_noun = nouns.count(noun) == 1 and noun not in _COLOURS
    colours = [w for w in words if w in _COLOURS]
    new_colours = [m.group(1) for p in preds if (m := _BECOMES_COLOUR.match(p))
                   and m.group(1) in _COLOURS]
    if unique_noun and len(colours) == 1:
      when = " at the start" if new_colours else ""
      out.append((f"What colour is the {noun}{when}?", colours[0]))
    if unique_noun and len(new_colours) == 1:
      out.append((f"What colour does the {noun} turn?", new_colours[0]))
    sizes = [_SIZE_WORDS[w] for w in words if w in _SIZE_WORDS]
    if unique_noun and len(sizes) == 1:
      when = " at the start" if any(_SIZE_CHANGE.match(p) for p in preds) else ""
      out.append((f"Is the {noun} big or small{when}?", sizes[0]))
    name = _subject(actor.name)
    moves = [(i, a) for i, a in enumerate(actor.actions)
             if a.predicate.split()[0].lower() in _MOVE_VERBS]
    for k, (i, act) in enumerate(moves):
      verb, *rest = act.predicate.split()
      dirs = [w.lower() for w in rest if w.lower() in _DIRECTIONS]
      if len(dirs) != 1:
        continue
      if k == 0:
        out.append((f"Which way does {name} {_base_form(verb)} first?", dirs[0]))
      if k == len(moves) - 1 and k > 0:
        out.append((f"Which way does {name} {_base_form(verb)} last?", dirs[0]))
    own = set(preds)
    if actor.actions:
      out.append((f"Does {name} {_base_form(actor.actions[0].predicate)}?", "yes"))
    for other in actors:   # another actor's action as a "no" (if it reads on its own)
      for act in other.actions:
        if (other is not actor and act.predicate.lower() not in own
            and not re.search(r"\b(?:it|its|until|when|because)\b", act.predicate.lower())):
          out.append((f"Does {name} {_base_form(act.predicate)}?", "no"))
          break
  return out


CANDIDATES = {"temporal": temporal_candidates, "causal": causal_candidates,
              "shortqa": shortqa_candidates}


def write_pair(narrative: narratives_lib.Narrative, kind: str, seed: int
               ) -> tuple[str, str] | None:
  """One (question, answer) for `kind`, drawn with a seed per (clip, kind); None if none fits."""
  actors = [parse_actor(a) for a in narrative.actors]
  candidates = CANDIDATES[kind](actors)
  if not candidates:
    return None
  digest = hashlib.sha256(f"rules/{seed}/{narrative.clip_id}/{kind}".encode()).digest()
  return random.Random(int.from_bytes(digest[:8], "big")).choice(candidates)
