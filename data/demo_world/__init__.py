"""The demo video world: a procedural world whose captions and answers need time.

    python -m data.demo_world --out=DIR --preset=test|demo --seed=N [--workers=K]

Coloured shapes (circle, square, triangle, diamond; red, green, blue, yellow, purple; small or
big) on a plain grey background; 1-3 actors and 1-3 events per clip (mostly one of each, see
ACTORS_P and EVENTS_P), strictly in order: move left/right/up/down, grow, shrink, appear,
disappear, change colour, bounce off a wall, and "stop because it hits another actor" (a cause);
mostly changes of colour, size and presence, which the demo models can learn to see
(EVENT_WEIGHTS). Clips are 16 frames of 64x64 RGB at 4 fps (4 s), encoded as real H.264 mp4 with
PyAV.

Same-middle-frame pairs: a pair is one simulated clip and the same clip played backwards,
both pivoting on frame 8, so frame 8 is identical while every event is inverted (moves left <->
moves right, grows <-> shrinks, appears <-> disappears, turns blue <-> turns red) and their order
is reversed. A model that sees one frame cannot tell their captions apart. `pair_fraction` of
every split (40%) are such pairs; world/clips.jsonl records `pair_id`.

Every output is in the layout of a real public data set:

    DIR/manifest.json    preset, seed, counts per split and format, files, bytes, seconds
    DIR/world/clips.jsonl  ground truth per clip (not for model use)
    DIR/stills/          COCO captions (images/<id>.png, captions_train.json, captions_val.json)
    DIR/smit/            S-MiT-style spoken captions (videos/, train.csv, val.csv)
    DIR/vidln/           VidLN-style actor narratives with word times (videos/, train.jsonl)
    DIR/webvid/          unlabeled pool with alt-text (videos/, results_pool.csv)
    DIR/msrvtt/          MSR-VTT (MSRVTT_data.json, MSRVTT_JSFUSION_test.csv, videos/all/,
                         MSRVTT-QA/test_qa.json)
    DIR/nextqa/          NExT-QA open-ended (val.csv, test.csv, map_vid_vidorID.json, NExTVideo/)
    DIR/kinetics/        Kinetics-style action labels (test.csv, test/<label>/<id>_<s>_<e>.mp4)
    DIR/activitynet/     ActivityNet Captions (val_1.json, 2 segments per video) and ActivityNet-QA
                         (test_q.json, test_a.json), videos/v_<id>.mp4: copies of MSR-VTT test clips
    DIR/vatex/           VATEX (vatex_public_test_english_v1.1.json, 10 captions, videos/): copies
                         of other MSR-VTT test clips
    DIR/spm/             demo.model, demo.vocab: SentencePiece trained on all the world's text

Presets (see PRESETS): "test" has 156 mp4 clips + 72 stills (~1.2 MB, a few seconds on one
core; the test fixture's world); "demo" has 4,212 mp4 clips + 2,200 stills (6,412 clips with
400 MSR-VTT 1k-A test videos, 400 NExT-QA videos with ~2,300 questions; ~29 MB) and costs ~34
CPU-seconds in all, i.e. ~20 s on two free cores (measured 92 s wall on a 2-core machine at
load 8.5).

Stills, S-MiT, VidLN and the pool are train side; MSR-VTT test, NExT-QA and Kinetics are
held-out clips drawn from other random streams (disjoint clip ids and files). Everything is a
deterministic function of the seed (texts and mp4 bytes alike).
"""

# One job per module: vocabulary (words, physics, the script types), scripts (sampling, placement,
# pairs), language (the English writer), questions (NExT-QA and Kinetics labels), render (frames,
# mp4 and PNG), formats (records, file layouts, SentencePiece), generate (presets, workers, the
# command line). The names below are the world's public API: `from data import demo_world`.
from data.demo_world.formats import clip_from_record, clip_record, read_records, train_spm
from data.demo_world.generate import PRESETS, Preset, generate, main, run_units
from data.demo_world.language import (alt_text, appearance, appearance_captions,
                                      canonical_caption, narratives, paraphrases, spoken_caption,
                                      still_captions)
from data.demo_world.questions import kinetics_label, nextqa_questions
from data.demo_world.scripts import contact_distance, sample_clip, sample_pair
from data.demo_world.vocabulary import (
    ACTORS_P, COLOURS, DIRECTION_WORDS, DIRECTIONS, EVENT_KINDS, EVENT_STEMS, EVENT_VERBS,
    EVENT_WEIGHTS, EVENTS_P, FPS, FRAME_MAX, INVERSE_KIND, KINETICS_ACTORS_P, KINETICS_LABELS,
    LAST, MID_FRAME, NEXTQA_TYPES, NUM_FRAMES, NUMBER_WORDS, OPPOSITE, PROMPTS, SHAPES,
    SIM_FRAMES, SIZE_WORDS, SIZES, VERB_FORMS, WALLS, Actor, Clip, Event)
