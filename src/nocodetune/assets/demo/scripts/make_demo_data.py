"""Write demo_dataset.jsonl: written dates → ISO 8601, deterministically (seeded).

Why this task: SmolLM2-135M-Instruct knows dates but does not answer in a strict format;
it adds explanations or misreads ordinal/abbreviated forms, so exact match on held-out
examples is low before fine-tuning and high after. Run from anywhere:
    python src/nocodetune/assets/demo/scripts/make_demo_data.py
"""

from __future__ import annotations

import calendar
import json
import random
from datetime import date
from pathlib import Path

SEED = 20260127
ROWS = 480
OUT = Path(__file__).resolve().parent.parent / "demo_dataset.jsonl"

MONTHS = list(calendar.month_name)[1:]
ABBR = list(calendar.month_abbr)[1:]
PROMPTS = [
    "Convert this date to ISO format (YYYY-MM-DD): {d}",
    "Write {d} as an ISO 8601 date.",
    "ISO date for: {d}",
]


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def written(d: date, style: int) -> str:
    m, a = MONTHS[d.month - 1], ABBR[d.month - 1]
    return [
        f"{m} {d.day}, {d.year}",
        f"{d.day} {m} {d.year}",
        f"{a}. {d.day}, {d.year}",
        f"the {ordinal(d.day)} of {m}, {d.year}",
        f"{m} {ordinal(d.day)}, {d.year}",
        f"{d.day} {a} {d.year}",
    ][style]


def rows(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[date] = set()
    out = []
    while len(out) < n:
        d = date(rng.randint(1950, 2039), rng.randint(1, 12), rng.randint(1, 28))
        if d in seen:
            continue
        seen.add(d)
        prompt = rng.choice(PROMPTS).format(d=written(d, rng.randrange(6)))
        out.append({"prompt": prompt, "completion": d.isoformat()})
    return out


if __name__ == "__main__":
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows(ROWS, SEED)), encoding="utf-8")
    print(f"wrote {ROWS} rows to {OUT}")
