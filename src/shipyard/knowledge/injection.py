"""A heuristic detector for prompt-injection attempts hidden in retrieved or uploaded text.

Retrieved text is data: the extractive answerer never interprets it, and a generative answerer
must not either. This detector exists so that such text can be flagged (for review, for a
warning next to a citation, or to keep it out of a model's context), not as the defence itself.

It matches known phrasings, case-insensitively and across any run of whitespace, after NFKC
normalisation (so full-width letters count) and removal of zero-width characters:

- overriding earlier instructions: "ignore / disregard / forget / override (all) previous
  instructions", "new instructions:";
- re-assigning the assistant's role: "you are now an unrestricted AI", "act as a jailbroken
  assistant", "pretend you are ...", "from now on you will respond ...";
- extracting hidden configuration: "system prompt", "reveal your instructions";
- chat-template and section markers: "<|im_start|>", "[INST]", "<<SYS>>", "### Instruction",
  "BEGIN SYSTEM";
- jailbreak phrasing: "jailbreak", "Do Anything Now", "DAN mode", "developer mode enabled",
  "bypass your safety filters".

Each pattern needs its specific target words, so ordinary uses of the same verbs ("the system
administrator", "please ignore the noise", "act as a liaison", "you are now enrolled") are not
flagged. A heuristic misses paraphrases and can flag a document that discusses injection.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "INJECTION",
    "INJECTION_DROPPED",
    "INJECTION_INPUT",
    "INJECTION_RETRIEVED",
    "injection_signals",
    "looks_like_injection",
]

# Run flags (docs/pii.md): any injection; where it was found; retrieved passages left out.
INJECTION = "injection"
INJECTION_INPUT = "injection:input"
INJECTION_RETRIEVED = "injection:retrieved"
INJECTION_DROPPED = "injection:dropped"

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
# Words that may sit between a verb and its target: "ignore all of the above instructions".
_FILLER = r"(?:(?:all|any|every|each|of|the|your|my|these|those|its|this|that|and|other)\s+)*"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system|old)"
_RULES = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guardrails|"
    r"commands?|context|messages?|programming|constraints)"
)
_AI = (
    r"(?:ai|assistant|chatbot|bot|language\s+model|llm|gpt|dan|unrestricted|unfiltered|"
    r"uncensored|jailbroken|evil|rogue)\b"
)

_PATTERNS: dict[str, str] = {
    "override-instructions": (
        rf"\b(?:ignore|disregard|forget|override|overrule|skip|bypass|abandon|drop)\s+"
        rf"{_FILLER}(?:{_EARLIER}\s+{_FILLER}(?:\w+\s+)?{_RULES}|{_RULES}\s+(?:above|before))\b"
        # "Ignore the above and ...": nothing named, but the whole preceding text is dismissed.
        r"|\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+)?"
        r"(?:above|previous|preceding|prior)\s*(?:[.,;:!]|$|and\b)"
    ),
    "forget-everything": r"\bforget\s+(?:everything|all)\s+(?:you|that|above|before|previous)",
    "new-instructions": r"\bnew\s+(?:system\s+)?instructions?\s*:",
    "role-reassignment": (
        rf"\byou\s+are\s+(?:now|no\s+longer)\s+(?:an?\s+|the\s+|in\s+)?(?:\w+\s+)?{_AI}"
        r"|\byou\s+are\s+no\s+longer\s+(?:bound|restricted|limited)\b"
    ),
    "act-as": (
        rf"\b(?:act|behave|respond|roleplay)\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?"
        rf"(?:an?\s+|the\s+)?(?:\w+\s+)?{_AI}"
        r"|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b"
    ),
    "from-now-on": (
        r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must|shall|should)\s+(?:only\s+)?"
        r"(?:act|respond|answer|reply|behave|pretend|ignore|obey|say)\b"
    ),
    "system-prompt": r"\bsystem\s+prompt\b",
    "reveal-configuration": (
        r"\b(?:reveal|show|print|repeat|output|leak|display|disclose|dump)\s+(?:me\s+)?"
        r"(?:your|the)\s+(?:\w+\s+){0,2}(?:instructions|prompt|guidelines|rules|"
        r"configuration|hidden\s+\w+|initial\s+\w+)\b"
    ),
    "chat-template": r"<\|\s*[a-z_]+\s*\|>|\[/?INST\]|<</?SYS>>",
    "section-marker": (
        r"#{2,}\s*(?:new\s+)?(?:instructions?|system|prompt)\b"
        r"|\b(?:BEGIN|END)\s+(?:SYSTEM|INSTRUCTIONS?|PROMPT)\b"
    ),
    "jailbreak": (
        r"\bjailbr(?:eak|oken)|\bdo\s+anything\s+now\b|\bDAN\s+mode\b"
        r"|\bdeveloper\s+mode\s+(?:enabled|on|activated)\b"
        r"|\b(?:bypass|disable|turn\s+off|remove)\s+(?:your|the|all|any)\s+"
        r"(?:\w+\s+)?(?:safety|content|moderation)\s+(?:filters?|guidelines|policies|rules)"
    ),
}
_COMPILED = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in _PATTERNS.items()}


def injection_signals(text: str) -> tuple[str, ...]:
    """Names of the injection patterns found in ``text`` (empty when none), for logs and UIs."""
    folded = " ".join(unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).split())
    return tuple(name for name, pattern in _COMPILED.items() if pattern.search(folded))


def looks_like_injection(text: str) -> bool:
    """True when ``text`` contains a known prompt-injection phrasing (see the module doc)."""
    return bool(injection_signals(text))
