"""Writes the bundled sample corpus: data/sample/{train,valid}.txt and its README.md.

A small English-like grammar (a few hundred words, pure Python, fixed seed, so the files are the
same on every run) in which some words take different senses in different contexts, each sense
with its own context words ("bank" of a river / of money, ...): enough for a tiny biLM to learn
visibly in minutes on a laptop, and for a demo that contextual embeddings separate the senses.

Usage: python scripts/make_sample_corpus.py [--out data/sample] [--train 30000] [--valid 1500]
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

SEED = 1234
SENSE_SHARE = 0.4  # fraction of sentences that use a sense word

# Slots shared by all templates: {name}, {person}, {adj}, {time}, ... (lists below).
SLOTS = {
    "name": "anna ben carla david emma frank grace henry iris jack kate leo maria nick olga paul "
    "rosa sam tina victor".split(),
    "person": "teacher doctor farmer student child woman man neighbor driver artist nurse baker "
    "writer soldier sailor captain singer pilot lawyer clerk".split(),
    "animal": "dog cat horse fox goat rabbit duck pig sheep cow".split(),
    "object": "book letter car table chair window door bag cup box lamp map key coat hat "
    "basket bottle knife picture radio".split(),
    "place": "city village school market park station hospital library kitchen office church "
    "garage museum harbor square hotel farm shop bakery theater".split(),
    "adj": "old young small large quiet bright happy tired busy careful angry kind strange "
    "famous lonely clever proud gentle brave calm".split(),
    "color": "red blue green yellow white black brown grey".split(),
    "vt": "saw found bought sold painted carried opened cleaned liked wanted moved fixed "
    "dropped borrowed lost".split(),
    "vi": "slept laughed waited smiled ran walked arrived left sang danced worked cried".split(),
    "adv": "quickly slowly quietly carefully happily suddenly loudly gently".split(),
    "prep": "near in behind beside outside".split(),
    "time": [
        "yesterday",
        "today",
        "last week",
        "in the morning",
        "at noon",
        "in the evening",
        "on monday",
        "on sunday",
        "after lunch",
        "before dinner",
        "every day",
        "once again",
    ],
    "said": "said thought knew heard".split(),
    "number": "two three four five six ten twenty fifty hundred".split(),
}

GENERAL = [
    "the {adj} {person} {vt} the {object} {prep} the {place} {time} .",
    "{name} {vi} {adv} {prep} the {place} .",
    "{name} and {name} {vt} a {color} {object} {time} .",
    "the {animal} {vi} {prep} the {place} {time} .",
    "{name} {said} that the {object} was {adj} .",
    "a {adj} {animal} {vt} the {object} of the {person} .",
    "{time} , the {person} {vi} {adv} .",
    "{name} gave the {person} a {color} {object} .",
    "the {person} from the {place} was very {adj} .",
    "{name} {vt} the {object} because the {person} {vi} .",
    "did the {person} see the {color} {animal} {prep} the {place} ?",
    "{name} walked to the {place} with a {adj} {animal} .",
    "there was a {adj} {object} {prep} the {place} {time} .",
    "the {person} {said} that {name} {vi} {time} .",
]

# word -> sense -> templates. A slot {a|b} picks one of the words inside.
SENSES = {
    "bank": {
        "river": [
            "{name} sat on the bank of the river and watched the {current|water|reeds|canoe} .",
            "the river flooded its bank after the storm .",
            "{name} pulled the canoe up onto the muddy bank .",
            "willows and reeds grow along the bank where the {stream|river|current} bends .",
            "the {person} went fishing from the grassy bank of the stream .",
            "the water rose over the bank and covered the {reeds|willows|mud} .",
        ],
        "money": [
            "{name} put {number} dollars of savings in the bank {time} .",
            "the bank approved the loan and the mortgage .",
            "the teller at the bank counted the cash {adv} .",
            "{name} asked the bank about the interest on the {loan|mortgage|account|savings} .",
            "the bank raised the interest on every savings account .",
            "the {person} paid the cheque into the bank account .",
        ],
    },
    "bat": {
        "animal": [
            "a bat flew out of the dark cave at night .",
            "the bat spread its wings and hunted {insects|moths} .",
            "{name} saw a small bat hanging in the cave .",
            "at night the bat catches moths and insects in the dark .",
            "the bat with brown fur returned to its roost before dawn .",
            "the bat uses echoes to find insects at night .",
        ],
        "sports": [
            "{name} swung the bat and hit the ball over the fence .",
            "the batter picked up a wooden bat before the inning .",
            "the pitcher threw the ball and the bat cracked .",
            "the baseball team bought a new bat for the game .",
            "{name} gripped the bat {adv} and waited for the pitch .",
            "the coach gave the batter a heavy {wooden|baseball} bat .",
        ],
    },
    "plant": {
        "factory": [
            "the workers at the plant started the night shift .",
            "the steel plant closed and {number} workers lost their jobs .",
            "the car plant increased production of engines {time} .",
            "{name} manages the machines at the power plant .",
            "the plant hired new workers for the morning shift .",
            "the manager said the plant would raise its output .",
        ],
        "flora": [
            "{name} watered the plant in the garden {time} .",
            "the plant grew green leaves in the sunlight .",
            "the {person} moved the plant to a bigger pot with fresh soil .",
            "the roots of the plant need water and sunlight .",
            "this plant has {color} flowers and small seeds .",
            "{name} planted seeds and the plant sprouted new {leaves|roots|flowers} .",
        ],
    },
    "spring": {
        "season": [
            "in spring the trees are full of blossoms .",
            "the weather gets warm in the spring after a long winter .",
            "{name} loves the rain and sunshine of spring .",
            "birds return in the spring and sing {adv} .",
            "every spring the {person} plants flowers in april .",
            "spring comes after winter and before summer .",
        ],
        "coil": [
            "the metal spring inside the mattress broke .",
            "{name} compressed the spring and it bounced back .",
            "the clock stopped because the steel spring snapped .",
            "a small coil spring holds the tension in the pen .",
            "the {person} replaced the wire spring in the {clock|pen|mattress} .",
            "the spring was made of tightly wound steel wire .",
        ],
    },
    "apple": {
        "fruit": [
            "{name} ate a ripe apple from the orchard .",
            "the {person} baked an apple pie for dinner .",
            "the apple tree in the orchard is full of fruit .",
            "{name} peeled a sweet juicy apple {time} .",
            "there was a red apple in the fruit basket .",
            "the ripe apple fell from the tree .",
        ],
        "company": [
            "apple announced new phones and software {time} .",
            "shares of apple rose after the company launched a laptop .",
            "investors bought apple stock on the market .",
            "the ceo of apple said the company would hire engineers .",
            "apple sold millions of phones {time} .",
            "the software company competes with apple on the stock market .",
        ],
    },
    "match": {
        "fire": [
            "{name} struck a match and lit the candle .",
            "the match burned with a small flame .",
            "the {person} used a match to light the stove .",
            "there was only one match left in the box .",
            "{name} lit the fire with a match and dry wood .",
            "the match went out in a puff of smoke .",
        ],
        "game": [
            "our team won the match by {number} goals .",
            "the referee stopped the match after a foul .",
            "fans filled the stadium for the football match .",
            "{name} scored the winning goal in the match .",
            "the players trained {adv} before the tournament match .",
            "the final score of the match was three to one .",
        ],
    },
    "mouse": {
        "animal": [
            "the cat chased a mouse into a hole .",
            "a tiny grey mouse ate the cheese .",
            "the mouse squeaked and ran under the {barn|trap|table} .",
            "{name} found a mouse in the barn with a long tail .",
            "the mouse twitched its whiskers near the trap .",
            "a mouse lives in the wall of the {place} .",
        ],
        "computer": [
            "{name} clicked the mouse and the screen changed .",
            "the computer mouse has a left button and a right button .",
            "move the mouse to put the cursor on the icon .",
            "the {person} bought a wireless mouse and a keyboard .",
            "the mouse cable was too short for the laptop .",
            "{name} used the mouse to open a file on the computer .",
        ],
    },
}


def fill(template: str, rng: random.Random) -> str:
    """A template with each ``{slot}`` replaced by a random word of that slot (or of ``{a|b}``)."""

    def word(match: re.Match) -> str:
        slot = match.group(1)
        return rng.choice(slot.split("|") if "|" in slot else SLOTS[slot])

    return re.sub(r"\{([\w|]+)\}", word, template)


def sentence(rng: random.Random) -> str:
    """One sentence: a sense template with probability SENSE_SHARE, else a general one."""
    if rng.random() < SENSE_SHARE:
        senses = SENSES[rng.choice(sorted(SENSES))]
        templates = senses[rng.choice(sorted(senses))]
        return fill(rng.choice(templates), rng)
    return fill(rng.choice(GENERAL), rng)


def template_words(templates: list[str]) -> set[str]:
    """Every literal word of ``templates``, the options of ``{a|b}`` slots included."""
    words = set()
    for template in templates:
        for part in template.split():
            slot = re.fullmatch(r"\{([\w|]+)\}", part)
            if slot is None:
                words.add(part)
            elif "|" in slot.group(1):
                words.update(slot.group(1).split("|"))
    return words


def context_words(word: str, sense: str) -> list[str]:
    """Words that occur only in the templates of this sense: its distinctive context."""
    others = set(SENSES) | {w for words in SLOTS.values() for w in words} | template_words(GENERAL)
    others |= set().union(
        *(
            template_words(templates)
            for other_word, senses in SENSES.items()
            for other_sense, templates in senses.items()
            if (other_word, other_sense) != (word, sense)
        )
    )
    return sorted(template_words(SENSES[word][sense]) - others)


def readme(n_train: int, n_valid: int, vocab_size: int, n_tokens: int) -> str:
    rows = "\n".join(
        f"| {word} | {sense} | {' '.join(context_words(word, sense))} | "
        f"{fill(senses[sense][0], random.Random(SEED))} |"
        for word, senses in SENSES.items()
        for sense in senses
    )
    return f"""# Sample corpus

Made by `python scripts/make_sample_corpus.py` (pure Python, seed {SEED}; running it again writes
the same files). One whitespace-tokenized, lower-cased sentence per line, punctuation as tokens.

- `train.txt`: {n_train} sentences, {n_tokens} tokens, {vocab_size} distinct tokens.
- `valid.txt`: {n_valid} held-out sentences from the same grammar (later draws of the same
  generator).

Sentences come from a small English-like grammar of templates whose slots are filled at random
(names, people, animals, objects, places, adjectives, verbs, times). About {SENSE_SHARE:.0%} of
them use one of the ambiguous words below in one of its senses; each sense comes with its own
context words, so a contextual embedding of the word should separate its senses while the
context-independent (layer 0) embedding cannot.

Context words occur only in the sentences of that sense; the example is one such sentence.

| word | sense | context words of that sense | example |
|---|---|---|---|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/sample")
    parser.add_argument("--train", type=int, default=30000, help="training sentences")
    parser.add_argument("--valid", type=int, default=1500, help="held-out sentences")
    args = parser.parse_args()
    rng = random.Random(SEED)
    train = [sentence(rng) for _ in range(args.train)]
    valid = [sentence(rng) for _ in range(args.valid)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("".join(s + "\n" for s in train), encoding="utf-8")
    (out / "valid.txt").write_text("".join(s + "\n" for s in valid), encoding="utf-8")
    tokens = [t for s in train for t in s.split()]
    text = readme(len(train), len(valid), len(set(tokens)), len(tokens))
    (out / "README.md").write_text(text, encoding="utf-8")
    print(f"wrote {out}/train.txt ({len(train)} sentences, {len(tokens)} tokens), valid.txt")


if __name__ == "__main__":
    main()
