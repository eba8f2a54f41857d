"""HTML (BeautifulSoup over the stdlib parser) and Markdown (line-based, markup stripped)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, Tag

from shipyard.knowledge.parsers.common import (
    HTML,
    MARKDOWN,
    Collector,
    ParseLimits,
    decode_text,
    file_stem,
    one_line,
)
from shipyard.knowledge.types import ParsedDocument

_DROPPED = frozenset(
    {"script", "style", "nav", "head", "title", "noscript", "template", "iframe", "svg", "object"}
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li",
        "main", "ol", "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot",
        "tr", "ul",
    }
)  # fmt: skip
_WHITESPACE = re.compile(r"\s+")


def parse_html(filename: str, content: bytes, limits: ParseLimits) -> ParsedDocument:
    collector = Collector(limits)
    title = html_into(collector, decode_text(content))
    return collector.build(title=title or file_stem(filename), media_type=HTML)


def html_into(collector: Collector, markup: str) -> str:
    """Feed the visible text of ``markup`` to ``collector``; return the ``<title>`` text."""
    soup = BeautifulSoup(markup, "html.parser")
    title_tag = soup.find("title")
    title = one_line(title_tag.get_text(" ")) if isinstance(title_tag, Tag) else ""
    paragraph: list[str] = []

    def flush() -> None:
        collector.add("".join(paragraph))
        paragraph.clear()

    # An explicit stack instead of recursion: nesting depth is attacker-controlled.
    stack: list[tuple[Tag, Iterator[PageElement]]] = [(soup, iter(soup.children))]
    preformatted = 0
    while stack:
        tag, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if tag.name == "pre":
                preformatted -= 1
            if tag.name in _BLOCKS:
                flush()
            continue
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # not a Comment, Doctype, CData, ...
                text = str(child)
                paragraph.append(text if preformatted else _WHITESPACE.sub(" ", text))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if name in _DROPPED:
            continue
        if name in _HEADINGS:
            flush()
            collector.start_section(child.get_text(" "), heading_in_text=True)
            continue
        if name == "br":
            paragraph.append("\n")
            continue
        if name in _BLOCKS:
            flush()
        elif name in {"td", "th"}:
            paragraph.append(" ")
        if name == "pre":
            preformatted += 1
        stack.append((child, iter(child.children)))
    flush()
    return title


# --- Markdown -------------------------------------------------------------------------------

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_REFERENCE_DEFINITION = re.compile(r" {0,3}\[[^\]\n]+\]:\s+\S")
# Every pattern below is linear: each class excludes its own opening and closing delimiters,
# so a huge line of unmatched markers cannot make the regex engine rescan it per marker.
_INLINE = (
    (re.compile(r"^[ \t]*(?:>[ \t]?)+"), ""),  # blockquote markers
    (re.compile(r"^([ \t]*)[-*+][ \t]+(?:\[[ xX]\][ \t]+)?"), r"\1"),  # bullets, task boxes
    (re.compile(r"!\[([^\[\]\n]*)\]\([^()\n]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\[\]\n]+)\]\([^()\n]*\)"), r"\1"),  # inline links
    (re.compile(r"\[([^\[\]\n]+)\]\[[^\[\]\n]*\]"), r"\1"),  # reference links
    (re.compile(r"<((?:https?|mailto):[^<>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>\n]*)?/?>"), ""),  # inline HTML tags
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # code spans
    (re.compile(r"\*\*([^*\n]+)\*\*"), r"\1"),
    (re.compile(r"__([^_\n]+)__"), r"\1"),
    (re.compile(r"~~([^~\n]+)~~"), r"\1"),
    (re.compile(r"(?<![\w*])\*([^*\s](?:[^*\n]*[^*\s])?)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_([^_\s](?:[^_\n]*[^_\s])?)_(?!\w)"), r"\1"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])"), r"\1"),  # backslash escapes
)


def parse_markdown(filename: str, content: bytes, limits: ParseLimits) -> ParsedDocument:
    collector = Collector(limits)
    title = ""
    paragraph: list[str] = []
    fence: str | None = None

    def flush() -> None:
        collector.add("\n".join(paragraph))
        paragraph.clear()

    for line in decode_text(content).splitlines():
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
                flush()
            else:
                paragraph.append(line)
            continue
        if match := _FENCE.match(line):
            flush()
            fence = match.group(1)
            continue
        if not line.strip():
            flush()
            continue
        if match := _ATX.fullmatch(line):
            level, heading = len(match.group(1)), _atx_text(match.group(2) or "")
        elif paragraph and _SETEXT.fullmatch(line):
            # A "===" / "---" underline turns the paragraph above it into a heading.
            level = 1 if line.strip().startswith("=") else 2
            heading = " ".join(paragraph)
            paragraph.clear()
        elif _is_thematic_break(line) or _is_table_delimiter(line):
            flush()
            continue
        elif _REFERENCE_DEFINITION.match(line):
            continue
        else:
            paragraph.append(_strip_inline(line))
            continue
        flush()
        if level == 1 and not title:
            title = one_line(heading)
        collector.start_section(heading, heading_in_text=True)
    flush()
    return collector.build(title=title or file_stem(filename), media_type=MARKDOWN)


def _atx_text(raw: str) -> str:
    # The optional closing sequence ("## Title ##") is trimmed by hand: the obvious regex
    # backtracks quadratically on a long run of spaces.
    text = raw.rstrip()
    trimmed = text.rstrip("#")
    if trimmed != text and (not trimmed or trimmed[-1] in " \t"):
        text = trimmed.rstrip()
    return _strip_inline(text)


def _is_thematic_break(line: str) -> bool:
    stripped = line.strip()
    marks = set(stripped) - {" ", "\t"}
    indent = len(line) - len(line.lstrip(" "))
    return (
        indent <= 3 and len(marks) == 1 and marks <= {"-", "*", "_"} and len(stripped) >= 3
        and sum(stripped.count(mark) for mark in marks) >= 3
    )  # fmt: skip


def _is_table_delimiter(line: str) -> bool:
    stripped = line.strip()
    return "|" in stripped and "-" in stripped and set(stripped) <= set("|:- \t")


def _strip_inline(line: str) -> str:
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    return line
