"""Rebuild this example's data from ../shared/data/squad_rag (run from the repo root).

corpus.jsonl: every passage as one document record (source, title, text, groups); the
Pharmacy article is restricted to the access group "clinical" to show per-document access.
eval.jsonl: a seeded sample of dev questions: 200 answerable from the SQuAD 2.0 articles,
50 answerable from the SQuAD 1.1 articles and 150 unanswerable (SQuAD 2.0).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

RESTRICTED = {"Pharmacy": ["clinical"]}
HERE = Path(__file__).resolve().parent


def main(source: Path) -> None:
    with (source / "corpus.jsonl").open(encoding="utf-8") as handle:
        passages = [json.loads(line) for line in handle]
    with (HERE / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for passage in passages:
            record = {
                "source": passage["passage_id"],
                "title": f"{passage['article']} ({passage['paragraph_index'] + 1})",
                "text": passage["text"],
                "groups": RESTRICTED.get(passage["article"], []),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (source / "dev.jsonl").open(encoding="utf-8") as handle:
        questions = [json.loads(line) for line in handle]
    rng = random.Random(4)
    v2_yes = [q for q in questions if q["source"] == "squad-v2.0-dev" and q["is_answerable"]]
    v1_yes = [q for q in questions if q["source"] == "squad-v1.1-dev"]
    v2_no = [q for q in questions if not q["is_answerable"]]
    sample = rng.sample(v2_yes, 200) + rng.sample(v1_yes, 50) + rng.sample(v2_no, 150)
    rng.shuffle(sample)
    with (HERE / "eval.jsonl").open("w", encoding="utf-8") as out:
        for question in sample:
            record = {
                "id": question["id"],
                "question": question["question"],
                "answers": sorted(set(question["answers"])),
                "answerable": question["is_answerable"],
                "passage_id": question["passage_id"] if question["is_answerable"] else "",
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/squad_rag"))
