"""How the default farm's learned router (src/modelfarm/default_router.json) is made.

1. `prompts`: write seeded, graded prompts of four kinds: one-word facts, plain arithmetic,
   multi-step word problems and Python questions (answers computed here, so grading is exact).
   None of them is one of the prompts of benchmarks/routing_default_farm.py, which measures
   the result.
2. `modelfarm router collect` answers each with small, middle and brain (greedy) and grades them.
3. `modelfarm router train` fits the router on those outcomes (static MiniLM vectors, the default).

The outcomes of the shipped router (seed 0, 2026-11-28) are kept in
scripts/default_router_outcomes.csv: retraining from them needs no generation.

usage:
  python scripts/default_router.py prompts --out graded.jsonl [--seed 0]
  modelfarm router collect --prompts graded.jsonl --out outcomes.csv
  modelfarm router train --data outcomes.csv --out src/modelfarm/default_router.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# fmt: off
CAPITALS = [
    ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"), ("Egypt", "Cairo"),
    ("Canada", "Ottawa"), ("Russia", "Moscow"), ("Greece", "Athens"), ("Kenya", "Nairobi"), ("Peru", "Lima"),
    ("Norway", "Oslo"), ("Ireland", "Dublin"), ("Portugal", "Lisbon"), ("Austria", "Vienna"),
    ("Thailand", "Bangkok"), ("China", "Beijing"), ("Poland", "Warsaw"), ("Cuba", "Havana"),
]
FACTS = [
    ("How many legs does a spider have?", "8"), ("How many wheels does a bicycle have?", "2"),
    ("What color is grass?", "green"), ("What color is snow?", "white"), ("What color is a ripe banana?", "yellow"),
    ("Which animal barks?", "dog"), ("Which animal says 'moo'?", "cow"), ("What do cows drink?", "water"),
    ("What is frozen water called?", "ice"), ("How many months are in a year?", "12"),
    ("How many hours are in a day?", "24"), ("What is the opposite of 'up'?", "down"),
    ("What is the opposite of 'big'?", "small"), ("What is the opposite of 'day'?", "night"),
    ("Which planet do we live on?", "earth"), ("What is the largest ocean on Earth?", "pacific"),
    ("Which star is closest to the Earth?", "sun"), ("What gas do people breathe in to live?", "oxygen"),
    ("How many sides does a triangle have?", "3"),
    ("What shape has four equal sides and four right angles?", "square"),
    ("Which red fruit keeps the doctor away?", "apple"),
]
# fmt: on
WORD_PROBLEMS = [
    (
        "A baker makes {a} loaves in the morning and {b} in the afternoon. He sells {c} of them. "
        "How many loaves are left?",
        lambda a, b, c: a + b - c,
    ),
    (
        "Maria buys {a} notebooks at {b} dollars each and pays with a {c} dollar note. How much change does she get?",
        lambda a, b, c: c - a * b,
    ),
    (
        "A bus carries {a} passengers. At the first stop {b} get off and {c} get on. At the second stop "
        "half of the passengers get off. How many passengers are on the bus now?",
        lambda a, b, c: (a - b + c) // 2,
    ),
    (
        "A garden has {a} rows of tomato plants with {b} plants in each row. {c} plants die. How many plants are left?",
        lambda a, b, c: a * b - c,
    ),
    (
        "Leo reads {a} pages a day for {b} days, then {c} pages on the last day. How many pages does he read in total?",
        lambda a, b, c: a * b + c,
    ),
    (
        "A tank holds {a} litres. It is filled at {b} litres per minute for {c} minutes. How many more "
        "litres are needed to fill it?",
        lambda a, b, c: a - b * c,
    ),
]
CODE = [
    ("What does this Python code print?\n\nprint(len({s!r}) + {a})", lambda s, a, b: len(s) + a),
    ("What does this Python code print?\n\nprint(sum(range({a})))", lambda s, a, b: sum(range(a))),
    ("What does this Python code print?\n\nprint({a} // {b})", lambda s, a, b: a // b),
    ("What does this Python code print?\n\nprint({a} % {b})", lambda s, a, b: a % b),
    (
        "What does this Python code print?\n\nx = [{a}, {b}, 3]\nprint(max(x) - min(x))",
        lambda s, a, b: max(a, b, 3) - min(a, b, 3),
    ),
    ("What does this Python code print?\n\nprint({s!r}.upper())", lambda s, a, b: s.upper()),
]
WORDS = ["apple", "river", "cloud", "tiger", "lemon", "piano", "stone", "maple"]


def prompts(seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for country, city in CAPITALS:
        out.append({"prompt": f"What is the capital of {country}? Answer with one word.", "answer": city})
    for question, answer in FACTS:
        how = "a number" if answer.isdigit() else "one word"
        out.append({"prompt": f"{question} Answer with {how}.", "answer": answer})
    for _ in range(30):
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        op = rng.choice(["+", "-", "*"])
        value = a + b if op == "+" else a - b if op == "-" else a * b
        out.append({"prompt": f"What is {a} {op} {b}? Answer with a number.", "answer": str(value)})
    for i in range(40):
        template, solve = WORD_PROBLEMS[i % len(WORD_PROBLEMS)]
        while True:
            a, b, c = rng.randint(3, 40), rng.randint(2, 12), rng.randint(2, 30)
            if i % len(WORD_PROBLEMS) == 1:
                c = a * b + rng.randint(1, 40)
            if i % len(WORD_PROBLEMS) == 5:
                a = b * c + rng.randint(5, 60)
            value = solve(a, b, c)
            if value > 0 and (i % len(WORD_PROBLEMS) != 2 or (a - b + c) % 2 == 0):
                break
        prompt = template.format(a=a, b=b, c=c) + " Answer with a number."
        out.append({"prompt": prompt, "answer": str(value)})
    for i in range(30):
        template, solve = CODE[i % len(CODE)]
        s, a, b = rng.choice(WORDS), rng.randint(5, 30), rng.randint(2, 9)
        out.append({"prompt": template.format(s=s, a=a, b=b), "answer": str(solve(s, a, b))})
    rng.shuffle(out)  # a run stopped early still covers every kind
    for i, item in enumerate(out):
        item["id"] = f"p{i:03d}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("prompts", help="write the graded prompts (JSON lines)")
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = prompts(args.seed)
    args.out.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    print(f"wrote {len(items)} graded prompts to {args.out}")


if __name__ == "__main__":
    main()
