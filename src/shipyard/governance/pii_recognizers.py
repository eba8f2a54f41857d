"""Personal-data detection with Microsoft Presidio's pattern recognizers, fully offline.

Only recognizers that need no NLP model are used (no spaCy model, no AnalyzerEngine): each is
called directly and the results are merged here. Two of Presidio's defaults are adjusted:

- e-mail validation asks ``tldextract`` whether the domain has a public suffix, and its default
  extractor downloads the suffix list on first use. Here the extractor reads the snapshot
  bundled with the package and never fetches (``suffix_list_urls=()``, no cache dir);
- phone numbers: a bare run of digits (``1234567890``) is only taken for a phone number when
  a word like "phone" or "call" stands just before it; otherwise order numbers and ids that
  happen to be valid numbering-plan numbers would be flagged. A match of more than 15 digits
  (longer than any E.164 number) is dropped. Numbers written with ``+``, spaces, dots, dashes
  or brackets are otherwise kept as Presidio finds them.

Checksums are Presidio's: Luhn for cards, mod-97 for IBANs, and the national checksums of the
country recognizers (NHS, NIF/NIE, fiscal code, ...). A weak, unvalidated pattern match (score
below :data:`MIN_SCORE`) is not a finding. Of overlapping findings the longer one is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, cast

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    AuTfnRecognizer,
    CaSinRecognizer,
    CreditCardRecognizer,
    DeTaxIdRecognizer,
    EmailRecognizer,
    EsNieRecognizer,
    EsNifRecognizer,
    FiPersonalIdentityCodeRecognizer,
    IbanRecognizer,
    InAadhaarRecognizer,
    IpRecognizer,
    ItFiscalCodeRecognizer,
    NhsRecognizer,
    PhoneRecognizer,
    PlPeselRecognizer,
    SePersonnummerRecognizer,
    SgFinRecognizer,
    UkNinoRecognizer,
    UsItinRecognizer,
    UsSsnRecognizer,
)
from tldextract import TLDExtract

from shipyard.spec.pii import BASE_ENTITIES, COUNTRY_ENTITIES, RecognizerSpec

__all__ = ["MIN_SCORE", "Finding", "PiiDetector", "offline_suffixes"]

NO_NLP: Final = cast(NlpArtifacts, None)
"""Pattern recognizers never read NLP artifacts: no spaCy model is loaded or needed."""

MAX_PHONE_DIGITS: Final = 15  # E.164
MIN_SCORE: Final = 0.4
"""Findings scoring lower (unvalidated weak patterns) are dropped."""

_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|tel|telephone|call|calls|mobile|cell|cellphone|fax|ring|sms|whatsapp|text)\b"
    r"\W{0,3}(?:\w+\W{1,3}){0,2}$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One piece of personal data in a text: its type and where it is (never the value)."""

    entity: str
    start: int
    end: int
    score: float


@lru_cache(maxsize=1)
def offline_suffixes() -> TLDExtract:
    """A public-suffix extractor that only ever reads the snapshot shipped with tldextract."""
    return TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(offline_suffixes()(pattern_text).fqdn)


class ContextPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer; a bare digit run needs a phone word just before it."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts = NO_NLP
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        kept = []
        for result in results:
            found = text[result.start : result.end]
            if sum(char.isdigit() for char in found) > MAX_PHONE_DIGITS:
                continue  # longer than any E.164 number: a card or account number's digits
            if found.isdigit() and not _PHONE_CONTEXT.search(
                text[max(0, result.start - 40) : result.start]
            ):
                continue
            kept.append(result)
        return kept


_COUNTRY_RECOGNIZERS: Final[Mapping[str, Callable[[], EntityRecognizer]]] = {
    "US_SSN": UsSsnRecognizer,
    "US_ITIN": UsItinRecognizer,
    "UK_NHS": NhsRecognizer,
    "UK_NINO": UkNinoRecognizer,
    "ES_NIF": EsNifRecognizer,
    "ES_NIE": EsNieRecognizer,
    "IT_FISCAL_CODE": ItFiscalCodeRecognizer,
    "DE_TAX_ID": DeTaxIdRecognizer,
    "PL_PESEL": PlPeselRecognizer,
    "FI_PERSONAL_IDENTITY_CODE": FiPersonalIdentityCodeRecognizer,
    "SE_PERSONNUMMER": SePersonnummerRecognizer,
    "IN_AADHAAR": InAadhaarRecognizer,
    "AU_TFN": AuTfnRecognizer,
    "SG_NRIC_FIN": SgFinRecognizer,
    "CA_SIN": CaSinRecognizer,
}


def _custom(spec: RecognizerSpec) -> EntityRecognizer:
    return PatternRecognizer(
        supported_entity=spec.name,
        name=f"custom-{spec.name}",
        patterns=[Pattern(spec.name, spec.pattern, spec.score)],
    )


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: the longer span (then the higher score) wins,
    so a phone number "+1 212 927 9775" is not cut down to the valid NHS number inside it, and
    a card or IBAN is not cut down to a phone-like run of its digits."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start - f.end, -f.score, f.start)):
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


class PiiDetector:
    """Every built-in recognizer, built once; custom ones are built per spec and cached."""

    def __init__(self, countries: Sequence[str]) -> None:
        unknown = [country for country in countries if country not in COUNTRY_ENTITIES]
        if unknown:
            raise ValueError(f"no national-id recognizers for {', '.join(unknown)}")
        regions = tuple(dict.fromkeys([*PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS, *countries]))
        self._recognizers: dict[str, EntityRecognizer] = {
            "EMAIL_ADDRESS": OfflineEmailRecognizer(),
            "PHONE_NUMBER": ContextPhoneRecognizer(supported_regions=regions),
            "CREDIT_CARD": CreditCardRecognizer(),
            "IBAN_CODE": IbanRecognizer(),
            "IP_ADDRESS": IpRecognizer(),
        }
        self._recognizers.update((name, make()) for name, make in _COUNTRY_RECOGNIZERS.items())
        self.default_entities: tuple[str, ...] = (
            *BASE_ENTITIES,
            *(entity for country in countries for entity in COUNTRY_ENTITIES[country]),
        )
        self._custom: dict[RecognizerSpec, EntityRecognizer] = {}

    def entities_for(
        self, entities: Collection[str] | None, custom: Sequence[RecognizerSpec]
    ) -> tuple[str, ...]:
        """What a spec screens: its list, or the defaults plus its custom recognizers."""
        if entities is not None:
            return tuple(entities)
        return (*self.default_entities, *(spec.name for spec in custom))

    def detect(
        self,
        text: str,
        entities: Collection[str] | None = None,
        custom: Sequence[RecognizerSpec] = (),
    ) -> list[Finding]:
        wanted = set(self.entities_for(entities, custom))
        recognizers: list[tuple[EntityRecognizer, float]] = [
            (recognizer, MIN_SCORE)
            for name, recognizer in self._recognizers.items()
            if name in wanted
        ]
        for spec in custom:
            if spec.name in wanted:
                recognizer = self._custom.get(spec)
                if recognizer is None:
                    recognizer = self._custom.setdefault(spec, _custom(spec))
                recognizers.append((recognizer, min(MIN_SCORE, spec.score)))
        findings: list[Finding] = []
        for recognizer, threshold in recognizers:
            results: Any = recognizer.analyze(text, recognizer.supported_entities, NO_NLP)
            findings.extend(
                Finding(result.entity_type, result.start, result.end, float(result.score))
                for result in results
                if result.score >= threshold and result.end > result.start
            )
        return resolve_overlaps(findings)
