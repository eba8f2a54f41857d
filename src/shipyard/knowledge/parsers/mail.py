"""E-mail (RFC 822 / MIME): the body plus supported attachments, one level deep."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from shipyard.knowledge.parsers.common import (
    EML,
    Collector,
    ParseLimits,
    file_stem,
    one_line,
)
from shipyard.knowledge.parsers.markup import html_into
from shipyard.knowledge.types import DocumentRejected, ParsedDocument

# (filename, content, declared media type, nested) -> parsed attachment
AttachmentParser = Callable[[str, bytes, str | None, bool], ParsedDocument]
_MAX_PARTS = 500  # MIME parts visited while looking for attachments


def parse_eml(
    filename: str,
    content: bytes,
    limits: ParseLimits,
    parse_attachment: AttachmentParser,
    *,
    nested: bool = False,
) -> ParsedDocument:
    """``nested`` is set for an e-mail that is itself an attachment: its own attachments are
    only listed, which bounds the work a message-in-a-message-in-a-message can cause."""
    message = BytesParser(policy=policy.default).parsebytes(content)
    if not isinstance(message, EmailMessage):  # policy.default always builds EmailMessage
        raise DocumentRejected("malformed", "not a MIME message")
    collector = Collector(limits)
    _add_body(collector, message)
    attachments = list(_attachments(message))
    for number, part in enumerate(attachments, start=1):
        name = _attachment_name(part, number)
        if nested:
            collector.warnings.append(f"attachment {name!r} of an attached message not read")
            continue
        if number > limits.max_attachments:
            skipped = len(attachments) - limits.max_attachments
            collector.warnings.append(
                f"{skipped} attachment(s) beyond the limit of {limits.max_attachments} not read"
            )
            break
        try:
            data = _attachment_bytes(part)
            document = parse_attachment(name, data, part.get_content_type(), True)
        except DocumentRejected as rejected:
            collector.warnings.append(f"attachment {name!r} skipped: {rejected.code}")
            continue
        collector.start_section(f"Attachment: {name}")
        collector.add(document.text)
        collector.warnings.extend(f"attachment {name!r}: {w}" for w in document.warnings)
    try:
        subject = one_line(str(message.get("subject") or ""))
    except Exception:  # a mangled header is no reason to lose the message
        subject = ""
    return collector.build(title=subject or file_stem(filename), media_type=EML)


def _add_body(collector: Collector, message: EmailMessage) -> None:
    body = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(body, EmailMessage):
        return
    text = _text_of(body)
    if body.get_content_subtype() == "html":
        html_into(collector, text)
    else:
        collector.add(text)


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # unknown or lying charset parameter
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


def _attachments(message: EmailMessage) -> Iterator[EmailMessage]:
    """Leaf attachments, looking inside multipart attachments (some clients nest
    multipart/mixed) but never inside an attached message."""
    pending: list[Message] = list(message.iter_attachments())
    pending.reverse()
    visited = 0
    while pending and visited < _MAX_PARTS:
        part = pending.pop()
        visited += 1
        if not isinstance(part, EmailMessage):
            continue
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                pending.extend(child for child in reversed(children) if isinstance(child, Message))
            continue
        yield part


def _attachment_name(part: EmailMessage, number: int) -> str:
    raw = part.get_filename()
    name = one_line(raw.replace("\\", "/").rsplit("/", 1)[-1], 200) if raw else ""
    if name:
        return name
    suffix = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html"}
    return f"attachment-{number}{suffix.get(part.get_content_type(), '')}"


def _attachment_bytes(part: EmailMessage) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes(policy=policy.default)
        raise DocumentRejected("malformed", "empty attached message")
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise DocumentRejected("malformed", "attachment has no payload")
    charset = part.get_content_charset()
    if part.get_content_maintype() == "text" and charset and charset.lower() != "utf-8":
        # Text parsers read UTF-8 or cp1252; honour any other declared charset here.
        try:
            codecs.lookup(charset)
            return payload.decode(charset).encode("utf-8")
        except (LookupError, UnicodeError):
            return payload
    return payload
