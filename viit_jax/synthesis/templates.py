"""Prompt templates for the three kinds of video instruction data (the paper's VIIT design).

Written in this project's own words after the paper's description: the LLM plays a visual
assistant that only receives sentences about one video, writes a plausible, challenging question
that does not give the visual content away, and answers as if it were watching. Each prompt
carries two few-shot examples drawn at random (seeded per clip and kind) from three fixed ones.
Short QA answers have fewer than three words; at training time they are asked with
"Answer in en:" (see data/viit_tasks.py).

A prompt is a list of chat messages: the kind's instruction as the system turn, then the two
examples as user/assistant turns, then the clip's narrative as the last user turn. Replies use
exactly two lines, "Question: ..." and "Answer: ...".
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random

from viit_jax.synthesis import narratives as narratives_lib

KINDS = ("temporal", "causal", "shortqa")
NUM_SHOTS = 2

_ROLE = (
    "You are a visual assistant watching a short video. You do not get the frames: you only get a "
    "few sentences about this one video, saying what each person, animal or object in it does, in "
    "the order it happens. Speak about the video as if you were watching it yourself, and never "
    "mention sentences, descriptions, narrators or annotators.")

_RULES = (
    "The question must be plausible and challenging: someone who has not watched the video should "
    "not be able to answer it, so the question must not give away what happens. Answer as if you "
    "were looking at the video, in your own words; do not copy the description. Reply with exactly "
    "two lines and nothing else:\nQuestion: <the question>\nAnswer: <the answer>")

# The kind-specific task sentence; tests' fake servers recognise a kind by this text.
TASKS = {
    "temporal": (
        "Write one question about the order of the actions in this video (what happens before or "
        "after something else, what comes first, next or last), and its answer."),
    "causal": (
        "Write one question that asks why or how something happens in this video (the intention "
        "behind an action, or what caused it), and its answer, which explains it."),
    "shortqa": (
        "Write one short question about this video whose answer has fewer than three words (one "
        "or two words), and that answer. The question will be asked after the words "
        "\"Answer in en:\"."),
}

# Three fixed examples per kind: (description, question, answer).
EXAMPLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "temporal": (
        ("a woman: The woman walks into the kitchen, opens the fridge and takes out a bottle of "
         "milk. She fills a glass and then puts the bottle back.\n"
         "a cat: The cat sits on the counter and jumps down when the fridge opens.",
         "What does the woman do right after she fills the glass?",
         "She puts the bottle back into the fridge."),
        ("a boy: The boy kicks a ball across the lawn, runs after it and picks it up. Then he "
         "throws it to the dog.\n"
         "a dog: The dog waits by the fence, catches the ball and runs off with it.",
         "What does the dog do before it runs off?",
         "It catches the ball the boy threw."),
        ("a man: The man climbs a ladder, pulls leaves out of the gutter and climbs back down. "
         "Finally he carries the ladder to the garage.",
         "What is the last thing the man does?",
         "He carries the ladder into the garage."),
    ),
    "causal": (
        ("a driver: The driver stops the car at the crossing because a group of children is "
         "walking across. When they have passed she drives on slowly.\n"
         "the children: The children hold hands and cross the road together.",
         "Why does the car stop at the crossing?",
         "Because children are walking across the road in front of it."),
        ("a girl: The girl stands on her toes and stretches towards a high shelf but cannot reach "
         "the jar. She pulls a chair over, climbs on it and takes the jar down.",
         "How does the girl manage to get the jar?",
         "She stands on a chair so that she can reach the shelf."),
        ("a man: The man rubs his hands and blows into them while he waits at the bus stop. Snow "
         "is falling.\n"
         "a bus: The bus arrives and opens its doors.",
         "Why does the man keep blowing into his hands?",
         "His hands are cold, it is snowing."),
    ),
    "shortqa": (
        ("a cook: The cook chops two onions, slides them into a hot pan and stirs them with a "
         "wooden spoon.",
         "How many onions are chopped?",
         "Two."),
        ("a dog: The brown dog digs a hole in the sand and drops a stick into it.\n"
         "a woman: The woman laughs and takes a photo.",
         "What does the dog put in the hole?",
         "A stick."),
        ("a cyclist: The cyclist in a yellow jacket rides up the hill and waves at the top.",
         "What colour is the cyclist's jacket?",
         "Yellow."),
    ),
}


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One request for one (clip, kind)."""
  prompt_id: str                    # "<clip_id>/<kind>"
  clip_id: str
  kind: str
  shots: tuple[int, ...]            # indices into EXAMPLES[kind]
  messages: tuple[dict[str, str], ...]   # chat messages, roles system/user/assistant
  narrative: narratives_lib.Narrative    # the text the prompt was built from


def format_reply(question: str, answer: str) -> str:
  """The reply format every back-end must produce (and the few-shot turns show)."""
  return f"Question: {question}\nAnswer: {answer}"


def system_message(kind: str) -> str:
  return f"{_ROLE}\n\n{TASKS[kind]} {_RULES}"


def template_hash(kind: str) -> str:
  """sha256 of everything in a kind's template; recorded in the dataset manifest."""
  blob = json.dumps({"system": system_message(kind), "examples": EXAMPLES[kind],
                     "num_shots": NUM_SHOTS}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()


def choose_shots(seed: int, clip_id: str, kind: str) -> tuple[int, ...]:
  """NUM_SHOTS distinct example indices, a pure function of (seed, clip_id, kind)."""
  digest = hashlib.sha256(f"{seed}/{clip_id}/{kind}".encode()).digest()
  rng = random.Random(int.from_bytes(digest[:8], "big"))
  return tuple(rng.sample(range(len(EXAMPLES[kind])), NUM_SHOTS))


def build_prompt(narrative: narratives_lib.Narrative, kind: str, seed: int) -> Prompt:
  if kind not in TASKS:
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
  shots = choose_shots(seed, narrative.clip_id, kind)
  messages: list[dict[str, str]] = [{"role": "system", "content": system_message(kind)}]
  for i in shots:
    description, question, answer = EXAMPLES[kind][i]
    messages.append({"role": "user", "content": f"Video description:\n{description}"})
    messages.append({"role": "assistant", "content": format_reply(question, answer)})
  messages.append({"role": "user", "content": f"Video description:\n{narrative.text()}"})
  return Prompt(f"{narrative.clip_id}/{kind}", narrative.clip_id, kind, shots, tuple(messages),
                narrative)
