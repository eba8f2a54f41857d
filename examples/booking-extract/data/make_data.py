"""Rebuild this example's data from ../shared/data/polyai_span_extraction (run from the repo
root). Only the Restaurants-8K rows are used (CC BY 4.0; the DSTC8 domains are CC BY-SA).

train.jsonl: every restaurant8k training row, in source order: ``id``, ``text`` and ``spans``
(``slot``, ``start``, ``end``, ``value``), the format kind ``extract`` trains from.
dev.jsonl: every restaurant8k dev row with one column per slot holding the gold value, or
"" when the utterance does not mention the slot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DOMAIN = "restaurant8k"
SLOTS = ("people", "date", "time", "first_name", "last_name")
HERE = Path(__file__).resolve().parent


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [row for row in rows if row["domain"] == DOMAIN]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(source: Path) -> None:
    train = [
        {
            "id": row["id"],
            "text": row["text"],
            "spans": [
                {key: span[key] for key in ("slot", "start", "end", "value")}
                for span in row["spans"]
            ],
        }
        for row in _rows(source / "train.jsonl")
    ]
    _write(HERE / "train.jsonl", train)
    dev = []
    for row in _rows(source / "dev.jsonl"):
        gold = {span["slot"]: span["value"] for span in row["spans"]}
        if len(gold) != len(row["spans"]):
            raise SystemExit(f"{row['id']}: a slot occurs twice; one column cannot hold both")
        dev.append({"id": row["id"], "text": row["text"], **{s: gold.get(s, "") for s in SLOTS}})
    _write(HERE / "dev.jsonl", dev)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/polyai_span_extraction"))
