"""Precision, recall and F1 of the PII detector per entity type, on generated sentences.

The labelled set is built from templates with a fixed seed: sentences holding valid-checksum
card numbers (Luhn), IBANs (mod 97), e-mail addresses, phone numbers in several national and
international formats, IPv4/IPv6 addresses, US SSNs, UK NHS numbers and Spanish NIFs, and hard
negatives that look alike but are not personal data: card numbers failing Luhn, IBANs with wrong
check digits, order and invoice numbers, dates, times, version strings, prices, tracking codes.

A prediction is correct when it has the gold entity type and overlaps the gold span. Run from
the repo root (no network is used):

    .venv/bin/python bench/pii_detector.py [--sentences 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from shipyard.governance.pii_recognizers import PiiDetector

ENTITIES = (
    "CREDIT_CARD",
    "IBAN_CODE",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "US_SSN",
    "UK_NHS",
    "ES_NIF",
)
COUNTRIES = ("US", "GB", "ES", "IT")


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[Span, ...]
    kind: str  # the generator: an entity type, or "neg:<what>" for a hard negative


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


# -- valid identifiers ---------------------------------------------------------------------


def luhn_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return str((10 - total % 10) % 10)


def card(rng: random.Random, valid: bool = True) -> str:
    prefix, length, groups = rng.choice(
        [
            ("4", 16, (4, 4, 4, 4)),
            (str(rng.randint(51, 55)), 16, (4, 4, 4, 4)),
            (rng.choice(["34", "37"]), 15, (4, 6, 5)),
            ("6011", 16, (4, 4, 4, 4)),
        ]
    )
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    number = body + check
    separator = rng.choice([" ", "-", ""])
    parts, cursor = [], 0
    for size in groups:
        parts.append(number[cursor : cursor + size])
        cursor += size
    return separator.join(parts)


_IBAN_FORMATS = {  # country: (bank code shape, account shape) as D=digit, A=letter, C=alnum
    "GB": "AAAADDDDDDDDDDDDDD",
    "DE": "DDDDDDDDDDDDDDDDDD",
    "ES": "DDDDDDDDDDDDDDDDDDDD",
    "FR": "DDDDDDDDDDCCCCCCCCCCCDD",
    "IT": "ADDDDDDDDDDCCCCCCCCCCCC",
    "NL": "AAAADDDDDDDDDD",
}


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(sorted(_IBAN_FORMATS))
    pools = {"D": string.digits, "A": string.ascii_uppercase, "C": string.digits + "ABCDEFGH"}
    bban = "".join(rng.choice(pools[shape]) for shape in _IBAN_FORMATS[country])
    digits = "".join(str(int(char, 36)) for char in bban + country + "00")
    check = 98 - int(digits) % 97
    if not valid:
        check = (check + rng.randint(1, 90)) % 97 + 2
    raw = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return raw
    return " ".join(raw[index : index + 4] for index in range(0, len(raw), 4))


def email(rng: random.Random) -> str:
    first = rng.choice(["anna", "bob", "chen", "dmitri", "eva", "farah", "gus", "hana", "ivo"])
    last = rng.choice(["smith", "garcia", "rossi", "novak", "okafor", "lee", "muller", "khan"])
    local = rng.choice([f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}"])
    domain = rng.choice(
        ["example.com", "mail.example.org", "corp.example.co.uk", "example.de", "acme.io",
         "uni-example.edu", "shop.example.es"]
    )  # fmt: skip
    return f"{local}@{domain}"


def phone(rng: random.Random) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    area = rng.choice(["212", "415", "312", "617", "206", "303", "512", "646"])
    exchange = f"{rng.randint(2, 9)}{d(2)}"
    line = d(4)
    return rng.choice(
        [
            f"({area}) {exchange}-{line}",
            f"{area}-{exchange}-{line}",
            f"+1 {area} {exchange} {line}",
            f"{area}.{exchange}.{line}",
            f"+44 20 7{d(3)} {d(4)}",
            f"020 7{d(3)} {d(4)}",
            f"07{rng.choice('45789')}{d(2)} {d(6)}",
            f"+44 7{rng.choice('45789')}{d(2)} {d(6)}",
            f"+49 30 {d(8)}",
            f"+33 6 {rng.randint(10, 89)} {d(2)} {d(2)} {d(2)}",
        ]
    )


def ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        first = rng.choice([10, 172, 192, 8, 34, 52, 81, 145, 203])
        return ".".join(str(part) for part in (first, *(rng.randint(0, 255) for _ in range(3))))
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return f"2001:db8:{groups[0]}::{groups[1]}"


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    number = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return number if rng.random() < 0.8 else number.replace("-", " ")


def nhs(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            number = "".join(map(str, digits)) + str(check)
            return f"{number[:3]} {number[3:6]} {number[6:]}"


def nif(rng: random.Random) -> str:
    number = rng.randint(10_000_000, 99_999_999)
    return f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "CREDIT_CARD": card,
    "IBAN_CODE": iban,
    "EMAIL_ADDRESS": email,
    "PHONE_NUMBER": phone,
    "IP_ADDRESS": ip,
    "US_SSN": ssn,
    "UK_NHS": nhs,
    "ES_NIF": nif,
}

TEMPLATES: dict[str, list[str]] = {
    "CREDIT_CARD": [
        "Please charge my card {} for the renewal.",
        "The payment with card number {} was declined twice.",
        "Card: {} exp 09/27",
        "I used {} at the airport shop and was billed in dollars.",
    ],
    "IBAN_CODE": [
        "Refund the amount to IBAN {} please.",
        "My new account is {}, the old one is closed.",
        "Transfer details: {} (BIC on file).",
    ],
    "EMAIL_ADDRESS": [
        "Send the statement to {} instead.",
        "You can reach me at {} any time.",
        "From: {} Subject: card not arrived",
        "cc {} on the reply",
    ],
    "PHONE_NUMBER": [
        "Call me back on {} after five.",
        "My phone number changed to {}.",
        "Mobile: {}",
        "Please ring {} if the courier is late.",
        "You can text me at {} tomorrow.",
    ],
    "IP_ADDRESS": [
        "The login came from {} which is not me.",
        "Blocked request from IP {} at 03:12.",
        "Our gateway at {} drops the connection.",
    ],
    "US_SSN": [
        "My SSN is {} if you need to verify.",
        "Social security number: {}.",
        "The form shows {} as the taxpayer id.",
    ],
    "UK_NHS": [
        "My NHS number is {}.",
        "Patient {} missed the appointment.",
    ],
    "ES_NIF": [
        "Mi NIF es {} para la factura.",
        "Invoice to NIF {} please.",
    ],
}

NEGATIVES: dict[str, Callable[[random.Random], str]] = {
    "invalid-luhn": lambda r: f"The card {card(r, valid=False)} was rejected as invalid.",
    "invalid-iban": lambda r: f"The account {iban(r, valid=False)} failed validation.",
    "order": lambda r: f"Order {r.randint(1_000_000_000, 9_999_999_999)} has not shipped yet.",
    "order-hash": lambda r: f"Where is order #{r.randint(100_000, 999_999)}?",
    "invoice": lambda r: f"Invoice INV-{r.randint(2019, 2026)}-{r.randint(1, 99999):05d} is due.",
    "date": lambda r: (
        f"It happened on {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-"
        f"{r.randint(1, 28):02d} and again on {r.randint(1, 28)}/{r.randint(1, 12)}/2024."
    ),
    "time": lambda r: (
        f"The outage lasted from {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:"
        f"{r.randint(0, 59):02d} to {r.randint(0, 23):02d}:{r.randint(0, 59):02d}."
    ),
    "version": lambda r: (
        f"After updating the app to v{r.randint(1, 9)}.{r.randint(0, 30)}."
        f"{r.randint(0, 99)} the card screen is blank."
    ),
    "build": lambda r: (
        f"Windows build 10.0.{r.randint(19000, 22999)}.{r.randint(1000, 4999)} crashes on login."
    ),
    "price": lambda r: (
        f"I was charged ${r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(10, 99)}"
        " instead of the quoted price."
    ),
    "tracking": lambda r: (
        f"Tracking code 1Z{r.randint(100, 999)}AA1{r.randint(10**9, 10**10 - 1)} shows no movement."
    ),
    "amount": lambda r: (
        f"Top up of {r.randint(10, 500)} EUR failed with code {r.randint(100, 599)}."
    ),
    "sku": lambda r: (
        f"SKU {r.randint(100, 999)}-{r.randint(100, 999)}-{r.randint(100, 999)} is out of stock."
    ),
}


def generate(count: int, seed: int = 7) -> list[Sample]:
    """``count`` labelled sentences: about 65% with one or two entities, 35% hard negatives."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        if rng.random() < 0.35:
            kind = rng.choice(sorted(NEGATIVES))
            samples.append(Sample(NEGATIVES[kind](rng), (), f"neg:{kind}"))
            continue
        kinds = [rng.choice(ENTITIES)]
        if rng.random() < 0.2:
            kinds.append(rng.choice(ENTITIES))
        text, spans = "", []
        for entity in kinds:
            value = GENERATORS[entity](rng)
            before, after = rng.choice(TEMPLATES[entity]).split("{}")
            start = len(text) + len(before)
            spans.append(Span(entity, start, start + len(value)))
            text += before + value + after + " "
        samples.append(Sample(text.strip(), tuple(spans), kinds[0]))
    return samples


@dataclass
class Report:
    scores: dict[str, Scores] = field(default_factory=dict)
    negatives: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind: (flagged, all)


def evaluate(
    detector: PiiDetector, samples: Iterable[Sample], entities: Sequence[str] = ENTITIES
) -> Report:
    report = Report({entity: Scores() for entity in entities})
    for sample in samples:
        found = [f for f in detector.detect(sample.text) if f.entity in report.scores]
        matched: set[int] = set()
        for span in sample.spans:
            hit = next(
                (
                    index
                    for index, f in enumerate(found)
                    if index not in matched
                    and f.entity == span.entity
                    and f.start < span.end
                    and span.start < f.end
                ),
                None,
            )
            if hit is None:
                report.scores[span.entity].fn += 1
            else:
                matched.add(hit)
                report.scores[span.entity].tp += 1
        for index, f in enumerate(found):
            if index not in matched:
                report.scores[f.entity].fp += 1
        if sample.kind.startswith("neg:"):
            flagged, total = report.negatives.get(sample.kind, (0, 0))
            report.negatives[sample.kind] = (flagged + bool(found), total + 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    samples = generate(args.sentences, args.seed)
    report = evaluate(PiiDetector(COUNTRIES), samples)
    print(f"{len(samples)} sentences, seed {args.seed}, countries {', '.join(COUNTRIES)}\n")
    print(f"{'entity':<15}{'gold':>6}{'TP':>6}{'FP':>6}{'FN':>6}{'prec':>8}{'recall':>8}{'F1':>8}")
    total = Scores()
    for entity, s in report.scores.items():
        total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        print(
            f"{entity:<15}{s.tp + s.fn:>6}{s.tp:>6}{s.fp:>6}{s.fn:>6}"
            f"{s.precision:>8.3f}{s.recall:>8.3f}{s.f1:>8.3f}"
        )
    print(
        f"{'micro':<15}{total.tp + total.fn:>6}{total.tp:>6}{total.fp:>6}{total.fn:>6}"
        f"{total.precision:>8.3f}{total.recall:>8.3f}{total.f1:>8.3f}"
    )
    print("\nhard negatives flagged (any entity):")
    for kind, (flagged, count) in sorted(report.negatives.items()):
        print(f"  {kind[4:]:<14}{flagged:>4} / {count}")


if __name__ == "__main__":
    main()
