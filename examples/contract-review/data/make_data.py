"""Build dev.jsonl: contract excerpts from CUAD v1 (dev split) with gold field values.

Each excerpt is the contract's opening (where parties and date are stated) plus its first
Governing Law clause. Gold values are verbatim text of the excerpt, as an extractor must
return them: ``parties`` the first party name the annotators marked, ``agreement_date`` the
marked date clause, ``governing_law`` CUAD's normalised answer when it occurs verbatim in the
clause. A value not found in the excerpt is empty (not mentioned).

Usage: python data/make_data.py [path/to/cuad]   (default: ../shared/data/cuad from the repo)
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_CUAD = HERE.parents[2].parent / "shared" / "data" / "cuad"
CONTRACTS = 30
OPENING_CHARS = 1200
CLAUSE_CHARS = 500


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending at a space so no word is cut."""
    if len(text) <= limit:
        return text.strip()
    return text[:limit].rsplit(" ", 1)[0].strip()


def _first_in(excerpt: str, candidates: list[str]) -> str:
    """The earliest candidate in the excerpt; of those starting there, the longest."""
    found = [(excerpt.find(c), -len(c), c) for c in candidates if c.strip() and c in excerpt]
    return min(found)[2] if found else ""


def row(contract: dict[str, Any]) -> dict[str, str]:
    labels = contract["labels"]
    law_clauses = labels["Governing Law"]["clauses"]
    clause = _cut(law_clauses[0].split("<omitted>")[0], CLAUSE_CHARS) if law_clauses else ""
    opening = _cut(" ".join(contract["text"].split()), OPENING_CHARS)
    excerpt = f"{opening}\n[...]\n{clause}" if clause else opening
    law = labels["Governing Law"]["answer"].strip()
    return {
        "id": contract["contract_id"],
        "text": excerpt,
        "parties": _first_in(excerpt, labels["Parties"]["clauses"]),
        "agreement_date": _first_in(excerpt, labels["Agreement Date"]["clauses"]),
        "governing_law": law if law and law in clause else "",
    }


def main() -> None:
    cuad = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CUAD
    with gzip.open(cuad / "dev.jsonl.gz", "rt", encoding="utf-8") as handle:
        contracts = [json.loads(line) for line in handle]
    contracts.sort(key=lambda c: c["contract_id"])
    rows = [row(c) for c in contracts[:CONTRACTS]]
    with (HERE / "dev.jsonl").open("w", encoding="utf-8") as out:
        for item in rows:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} excerpts to {HERE / 'dev.jsonl'}")


if __name__ == "__main__":
    main()
