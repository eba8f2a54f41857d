"""PII detection (Presidio pattern recognizers, offline), redaction, blocking, the sealed
originals, the spec block and a slice of the labelled benchmark set."""

from __future__ import annotations

import importlib.util
import random
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import pytest

from shipyard.errors import SpecInvalid
from shipyard.governance import pii_recognizers
from shipyard.governance.pii import PiiBlocked, PiiScreen, VaultError, restore
from shipyard.governance.pii_recognizers import PiiDetector
from shipyard.governance.screening import PII_REDACTED, screen_input
from shipyard.settings import PiiCountry, Settings
from shipyard.spec import TaskSpec, load_task_spec
from shipyard.spec.pii import COUNTRY_ENTITIES, RecognizerSpec, known_entities

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"test-secret-key-" + b"x" * 32

CARD = "4111 1111 1111 1111"  # Luhn-valid test number
BAD_CARD = "4111 1111 1111 1112"  # fails Luhn
IBAN = "GB82 WEST 1234 5698 7654 32"  # the standard example, valid mod 97
SAMPLES = {
    "EMAIL_ADDRESS": "bob.smith@example.co.uk",
    "PHONE_NUMBER": "+1 (415) 555-0132",
    "CREDIT_CARD": CARD,
    "IBAN_CODE": IBAN,
    "IP_ADDRESS": "192.168.1.20",
    "US_SSN": "536-22-1234",
    "UK_NHS": "943 476 5919",
    "ES_NIF": "12345678Z",
    "IT_FISCAL_CODE": "RSSMRA85T10A562S",
}


def _spec(pii: dict[str, Any] | None = None, **extra: Any) -> TaskSpec:
    data: dict[str, Any] = {
        "name": "pii-task",
        "version": 1,
        "description": "A task with a PII policy.",
        "owner": "tests@example.com",
        "kind": "generate",
        "input": {
            "text": {"type": "string"},
            "notes": {"type": "list", "items": "string", "required": False},
            "channel": {"type": "enum", "values": ["mail", "phone"], "required": False},
        },
        "output": {"text": {"type": "string"}},
        "model": {"provider": "local", "model": "local-llm"},
        "prompt": {"user": "{text}"},
        **extra,
    }
    if pii is not None:
        data["pii"] = pii
    return TaskSpec.model_validate(data)


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector(["US", "GB", "ES", "IT"])


@pytest.fixture(scope="module")
def screen() -> PiiScreen:
    return PiiScreen(["US", "GB", "ES", "IT"], SECRET)


@pytest.mark.parametrize("entity", sorted(SAMPLES))
def test_each_entity_is_found_where_it_is(detector: PiiDetector, entity: str) -> None:
    value = SAMPLES[entity]
    text = f"Hello, here it is: {value}. Thanks!"
    found = detector.detect(text)
    assert [(f.entity, text[f.start : f.end]) for f in found] == [(entity, value)]


def test_detection_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("PII detection tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pii_recognizers.offline_suffixes.cache_clear()  # the suffix list is loaded afresh here
    fresh = PiiDetector(["US"])
    text = "Write to ana@example.co.uk or a.b@mail.example.de, not to x@nowhere.invalidtld."
    found = [text[f.start : f.end] for f in fresh.detect(text, ["EMAIL_ADDRESS"])]
    assert found == ["ana@example.co.uk", "a.b@mail.example.de"]


def test_luhn_and_checksums_decide(detector: PiiDetector) -> None:
    text = f"Card {BAD_CARD}, IBAN GB83 WEST 1234 5698 7654 32, NHS 943 476 5918."
    found = {f.entity for f in detector.detect(text)}
    # (the last digits may still read as a phone number; they are no card, IBAN or NHS number)
    assert not found & {"CREDIT_CARD", "IBAN_CODE", "UK_NHS"}


def test_bare_digit_runs_need_a_phone_word(detector: PiiDetector) -> None:
    assert detector.detect("Order 4155550132 has not shipped.") == []
    text = "Please call me at 4155550132 tonight."
    assert [f.entity for f in detector.detect(text)] == ["PHONE_NUMBER"]


def test_a_phone_number_is_not_cut_down_to_an_id_inside_it(detector: PiiDetector) -> None:
    text = "Call +1 212 927 9775 please."  # "212 927 9775" alone passes the NHS checksum
    assert [(f.entity, text[f.start : f.end]) for f in detector.detect(text)] == [
        ("PHONE_NUMBER", "+1 212 927 9775")
    ]


def test_countries_decide_the_national_ids(detector: PiiDetector) -> None:
    text = "NIF 12345678Z"
    assert [f.entity for f in detector.detect(text)] == ["ES_NIF"]
    assert PiiDetector(["US"]).detect(text) == []
    # A spec naming the entity gets it whatever the countries.
    assert [f.entity for f in PiiDetector(["US"]).detect(text, ["ES_NIF"])] == ["ES_NIF"]


def test_settings_countries_match_the_recognizers() -> None:
    assert set(get_args(PiiCountry)) == set(COUNTRY_ENTITIES)
    assert known_entities() == set(pii_recognizers.BASE_ENTITIES) | set(
        pii_recognizers._COUNTRY_RECOGNIZERS
    )
    assert Settings().pii_countries == ["US", "GB", "ES", "IT"]
    with pytest.raises(ValueError, match="pii_countries"):
        Settings(pii_countries=["XX"])


def test_redaction_uses_typed_placeholders_stable_within_a_run(screen: PiiScreen) -> None:
    spec = _spec({"policy": "redact", "reveal_roles": ["operator"]})
    data = {
        "text": f"Mail bob@example.com, card {CARD}, again bob@example.com or eve@example.com",
        "notes": ["from bob@example.com", "call +44 20 7946 0958"],
        "channel": "mail",
    }
    screened = screen_input(screen, spec, data)
    assert screened.data["text"] == (
        "Mail <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>, again <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>"
    )
    assert screened.data["notes"] == ["from <EMAIL_ADDRESS_1>", "call <PHONE_NUMBER_1>"]
    assert screened.data["channel"] == "mail"
    assert screened.flags == [PII_REDACTED]
    assert screened.pii_entities == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 4, "PHONE_NUMBER": 1}
    assert restore(screened.data, screened.originals) == data


def test_passages_and_output_share_the_runs_placeholders(screen: PiiScreen) -> None:
    spec = _spec(
        {"policy": "redact", "reveal_roles": ["operator"]},
        output={
            "text": {"type": "string"},
            "tags": {"type": "list", "items": "string"},
            "channel": {"type": "enum", "values": ["mail", "phone"]},
            "citations": {"type": "citations"},
        },
        knowledge={"collections": ["handbook"]},
    )
    screened = screen_input(screen, spec, {"text": "I am bob@example.com"})
    redact = screened.redact_text()
    assert redact is not None
    # A passage naming the caller's address gets the caller's placeholder; a new one, the next.
    assert redact("bob@example.com wrote to eve@example.com") == (
        "<EMAIL_ADDRESS_1> wrote to <EMAIL_ADDRESS_2>"
    )
    citation = {
        "document_id": "doc-1",
        "source": "mail.txt",
        "title": "From eve@example.com",
        "chunk": 0,
        "quote": f"Card {CARD}",
        "start": 4,
        "end": 40,
    }
    output = {
        "text": f"Charge {CARD} for eve@example.com",
        "tags": ["10.1.2.3", "vip"],
        "channel": "mail",
        "citations": [citation],
    }
    stored = screened.redact_output(spec, output)
    assert stored == {
        "text": "Charge <CREDIT_CARD_1> for <EMAIL_ADDRESS_2>",
        "tags": ["<IP_ADDRESS_1>", "vip"],
        "channel": "mail",
        "citations": [
            {**citation, "title": "From <EMAIL_ADDRESS_2>", "quote": "Card <CREDIT_CARD_1>"}
        ],
    }
    assert screened.flags == [PII_REDACTED]
    assert screened.pii_entities == {"CREDIT_CARD": 2, "EMAIL_ADDRESS": 5, "IP_ADDRESS": 1}
    # One sealed map restores input, passages and output alike, in either spelling a model
    # may use for a placeholder it read in an (HTML-escaped) passage.
    assert restore(stored, screened.originals) == output
    assert restore("to &lt;EMAIL_ADDRESS_2&gt;", screened.originals) == "to eve@example.com"
    assert restore("<EMAIL_ADDRESS_9>", screened.originals) == "<EMAIL_ADDRESS_9>"


def test_block_refuses_the_input_and_still_redacts_what_comes_back(screen: PiiScreen) -> None:
    screened = screen_input(screen, _spec({"policy": "block"}), {"text": "no personal data"})
    assert screened.flags == []
    stored = screened.redact_output(_spec({"policy": "block"}), {"text": "mail eve@example.com"})
    assert stored == {"text": "mail <EMAIL_ADDRESS_1>"}
    assert screened.flags == [PII_REDACTED]
    assert screened.originals == {}  # no reveal roles: nothing is kept


def test_allow_leaves_passages_and_output_alone(screen: PiiScreen) -> None:
    screened = screen_input(screen, _spec(), {"text": "hi"})
    assert screened.redact_text() is None
    output = {"text": "mail eve@example.com"}
    assert screened.redact_output(_spec(), output) is output
    assert screened.pii_entities is None


def test_irreversible_redaction_keeps_no_original(screen: PiiScreen) -> None:
    screened = screen_input(screen, _spec({"policy": "redact"}), {"text": "ip 10.1.2.3"})
    assert screened.data == {"text": "ip <IP_ADDRESS_1>"}
    assert screened.originals == {}


def test_allow_is_todays_behaviour(screen: PiiScreen) -> None:
    data = {"text": f"card {CARD}"}
    screened = screen_input(screen, _spec(), data)
    assert screened.data == data
    assert screened.flags == []
    assert screened.pii_entities is None


def test_block_names_fields_and_entity_types_never_values(screen: PiiScreen) -> None:
    spec = _spec({"policy": "block"})
    data = {"text": f"card {CARD} mail bob@example.com", "notes": ["ok", f"iban {IBAN}"]}
    with pytest.raises(PiiBlocked) as caught:
        screen_input(screen, spec, data)
    problems = {p.field: p.message for p in caught.value.problems}
    assert set(problems) == {"input.text", "input.notes.1"}
    assert "CREDIT_CARD" in problems["input.text"]
    assert "EMAIL_ADDRESS" in problems["input.text"]
    assert "IBAN_CODE" in problems["input.notes.1"]
    rendered = str(caught.value)
    for value in (CARD, "bob@example.com", IBAN, "4111"):
        assert value not in rendered
    assert caught.value.status == 422


def test_entities_subset_and_custom_recognizers(screen: PiiScreen) -> None:
    spec = _spec(
        {
            "policy": "redact",
            "entities": ["EMPLOYEE_ID", "EMAIL_ADDRESS"],
            "recognizers": [{"name": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}", "score": 0.9}],
        }
    )
    screened = screen_input(
        screen, spec, {"text": f"emp-123456 (EMP-654321) bob@example.com card {CARD}"}
    )
    assert screened.data["text"] == (
        f"<EMPLOYEE_ID_1> (<EMPLOYEE_ID_2>) <EMAIL_ADDRESS_1> card {CARD}"
    )


def test_sealed_originals_open_only_for_their_run_and_secret(screen: PiiScreen) -> None:
    sealed = screen.seal("run-1", {"<EMAIL_ADDRESS_1>": "bob@example.com"})
    assert "bob" not in sealed
    assert screen.open("run-1", sealed) == {"<EMAIL_ADDRESS_1>": "bob@example.com"}
    with pytest.raises(VaultError):
        screen.open("run-2", sealed)
    with pytest.raises(VaultError):
        PiiScreen(["US"], b"another-secret-" + b"y" * 32).open("run-1", sealed)
    with pytest.raises(VaultError):
        screen.open("run-1", sealed[:-4] + "AAAA")


SPEC_YAML = """\
name: pii-demo
version: 1
description: A task with a custom recognizer.
owner: tests@example.com
kind: generate
input:
  text: {{type: string}}
output:
  text: {{type: string}}
model: {{provider: local, model: local-llm}}
prompt: {{user: "{{text}}"}}
pii:
  policy: redact
  recognizers:
    - {{name: EMPLOYEE_ID, pattern: "{pattern}"}}
"""


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(a+)+b", "exponential"),
        ("([A-Z", "not a valid regular expression"),
        ("x*", "empty string"),
        ("(EMP)-\\\\1", "back-references"),
        ("A" * 201, "at most 200"),
    ],
)
def test_bad_custom_patterns_are_spec_errors_with_their_location(
    tmp_path: Path, pattern: str, fragment: str
) -> None:
    path = tmp_path / "pii-demo.yaml"
    path.write_text(SPEC_YAML.format(pattern=pattern))
    with pytest.raises(SpecInvalid) as caught:
        load_task_spec(path, project_dir=tmp_path)
    problems = caught.value.problems
    assert [p.field for p in problems] == ["pii.recognizers[0].pattern"]
    assert fragment in problems[0].message
    assert problems[0].line == 15


def test_unknown_entities_and_policies_are_spec_errors() -> None:
    with pytest.raises(ValueError, match="unknown entity 'PASSPORT'"):
        _spec({"policy": "redact", "entities": ["PASSPORT"]})
    with pytest.raises(ValueError, match="policy"):
        _spec({"policy": "scramble"})
    with pytest.raises(ValueError, match="built-in entity"):
        RecognizerSpec(name="EMAIL_ADDRESS", pattern="x+")


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pii_bench", ROOT / "bench" / "pii_detector.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pii_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_slice_cards_found_and_invalid_numbers_not(detector: PiiDetector) -> None:
    bench = _bench()
    samples = bench.generate(300, seed=11)
    assert len({s.text for s in samples}) > 250  # generated, not repeated
    report = bench.evaluate(detector, samples)
    assert report.scores["CREDIT_CARD"].tp > 0
    assert report.scores["CREDIT_CARD"].recall == 1.0
    assert report.scores["CREDIT_CARD"].fp == 0
    assert report.scores["IBAN_CODE"].recall == 1.0
    assert report.scores["EMAIL_ADDRESS"].recall == 1.0
    rng = random.Random(3)
    invalid = [bench.card(rng, valid=False) for _ in range(50)]
    assert not [c for c in invalid if detector.detect(f"card {c} declined")]
