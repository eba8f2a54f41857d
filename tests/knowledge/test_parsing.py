"""Document parsers: every format, every rejection code, and hostile input staying contained."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from email.message import EmailMessage
from functools import cache

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from shipyard.knowledge.parsers.common import normalise_text
from shipyard.knowledge.parsing import (
    DOCX,
    EML,
    HTML,
    MARKDOWN,
    PDF,
    SUPPORTED_TYPES,
    TEXT,
    ParseLimits,
    detect_media_type,
    parse_document,
)
from shipyard.knowledge.types import DocumentRejected, ParsedDocument

# -- fixtures built in memory ------------------------------------------------------------------


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal hand-written PDF: one Helvetica text line per page (empty string: no text)."""
    count = len(pages)
    font = 3 + 2 * count
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for i, text in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode()
        )
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = ""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info = f" /Info {len(objects)} 0 R"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R{info} >>".encode()
    out.write(b"trailer\n%s\nstartxref\n%d\n%%%%EOF\n" % (trailer, xref))
    return out.getvalue()


def make_docx(title: str | None = None) -> bytes:
    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    document.add_paragraph("Read this first.")
    document.add_heading("Vacation", level=1)
    document.add_paragraph("Employees get 25 days of paid vacation.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Tenure"
    table.cell(0, 1).text = "Days"
    table.cell(1, 0).text = "5 years"
    table.cell(1, 1).text = "30"
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Report sickness before 9am.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def rezip(content: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = replace.get(info.filename, source.read(info))
            target.writestr(info.filename, data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def zip_with(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def rejected(
    filename: str, content: bytes, limits: ParseLimits = ParseLimits()
) -> DocumentRejected:
    with pytest.raises(DocumentRejected) as info:
        parse_document(filename, content, limits=limits)
    return info.value


def section_texts(document: ParsedDocument) -> dict[str | None, str]:
    return {s.heading: document.text[s.start : s.end] for s in document.sections}


def assert_well_formed(document: ParsedDocument) -> None:
    assert document.text
    assert document.media_type in SUPPORTED_TYPES
    assert normalise_text(document.text) == document.text
    previous_end = 0
    for section in document.sections:
        assert previous_end <= section.start < section.end <= len(document.text)
        assert document.text[section.start : section.end].strip()
        previous_end = section.end


# -- PDF -------------------------------------------------------------------------------------


def test_pdf_text_layer_gives_one_section_per_page() -> None:
    document = parse_document("handbook.pdf", make_pdf(["Hello vacation policy", "Sick days"]))
    assert document.media_type == PDF
    assert document.title == "handbook"
    assert section_texts(document) == {"Page 1": "Hello vacation policy", "Page 2": "Sick days"}
    assert_well_formed(document)


def test_pdf_title_metadata_and_outline_headings() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["One", "Two", "Three"]))))
    writer.add_outline_item(title="Introduction", page_number=0)
    writer.add_outline_item(title="Benefits", page_number=1)
    writer.add_metadata({"/Title": "Staff Handbook"})
    out = io.BytesIO()
    writer.write(out)
    document = parse_document("h.pdf", out.getvalue())
    assert document.title == "Staff Handbook"
    assert [s.heading for s in document.sections] == [
        "Introduction (page 1)",
        "Benefits (page 2)",
        "Benefits (page 3)",
    ]


def test_pdf_pages_without_text_are_reported() -> None:
    document = parse_document("p.pdf", make_pdf(["Text", "", "More"], title="T"))
    assert document.title == "T"
    assert [s.heading for s in document.sections] == ["Page 1", "Page 3"]
    assert document.warnings == ("pages without extractable text: 2",)


def test_pdf_without_text_layer_is_empty() -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    assert rejected("scan.pdf", out.getvalue()).code == "empty"


def test_encrypted_pdf_is_refused_without_any_decryption_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt("pw")
    out = io.BytesIO()
    writer.write(out)

    def no_decrypt(*args: object, **kwargs: object) -> None:
        raise AssertionError("decryption attempted")

    from pypdf import _encryption

    monkeypatch.setattr(_encryption.Encryption, "verify", no_decrypt)
    assert rejected("secret.pdf", out.getvalue()).code == "encrypted"


def test_too_many_pages() -> None:
    error = rejected("p.pdf", make_pdf(["a", "b", "c"]), limits=ParseLimits(max_pdf_pages=2))
    assert error.code == "too_many_pages"


def test_truncated_pdf_is_rejected_cleanly() -> None:
    assert rejected("cut.pdf", make_pdf(["Hello"])[:60]).code in {"malformed", "empty"}


# -- DOCX ------------------------------------------------------------------------------------


def test_docx_headings_paragraphs_and_tables() -> None:
    document = parse_document("policy.docx", make_docx(title="HR Policy"))
    assert document.media_type == DOCX
    assert document.title == "HR Policy"
    assert section_texts(document) == {
        None: "Read this first.",
        "Vacation": (
            "Vacation\n\nEmployees get 25 days of paid vacation.\n\nTenure | Days\n5 years | 30"
        ),
        "Sick leave": "Sick leave\n\nReport sickness before 9am.",
    }
    assert_well_formed(document)


def test_docx_title_falls_back_to_file_stem() -> None:
    assert parse_document("C:\\docs\\leave-policy.docx", make_docx()).title == "leave-policy"


def test_docx_over_total_uncompressed_limit_is_a_zip_bomb() -> None:
    content = zip_with({"word/document.xml": bytes(range(256)) * 400})  # ~100 KB, incompressible
    limits = ParseLimits(max_zip_uncompressed=50_000)
    assert rejected("big.docx", content, limits=limits).code == "zip_bomb"


def test_docx_with_extreme_compression_ratio_is_a_zip_bomb() -> None:
    content = zip_with({"word/document.xml": b"0" * 2_000_000})  # about 1000:1
    assert len(content) < 10_000
    assert rejected("bomb.docx", content).code == "zip_bomb"


def test_docx_with_too_many_entries_is_a_zip_bomb() -> None:
    entries = {f"word/media/{i}.txt": b"x" for i in range(1001)}
    content = zip_with({"word/document.xml": b"<w:document/>", **entries})
    assert rejected("many.docx", content).code == "zip_bomb"


@pytest.mark.parametrize(
    "declaration",
    [
        b'<!DOCTYPE w:document [<!ENTITY lol "lol">]>',
        b'<!DOCTYPE foo SYSTEM "file:///etc/passwd">',
        b'<!ENTITY xxe SYSTEM "http://example.com/">',
    ],
)
def test_docx_with_doctype_or_entities_is_malformed(declaration: bytes) -> None:
    original = make_docx()
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        xml = archive.read("word/document.xml")
    head, _, rest = xml.partition(b"?>")
    evil = rezip(original, {"word/document.xml": head + b"?>" + declaration + rest})
    error = rejected("evil.docx", evil)
    assert error.code == "malformed"
    assert "DTD" in error.reason


def test_zip_with_broken_document_xml_is_malformed() -> None:
    content = zip_with({"word/document.xml": b"<not xml", "[Content_Types].xml": b"<Types/>"})
    assert rejected("broken.docx", content).code == "malformed"


@pytest.mark.parametrize(
    "content",
    [b"\x8f\x01garbage\x00\xff" * 50, b"just some text pretending", b"PK\x03\x04" + b"\x07" * 300],
)
def test_garbage_docx_is_rejected_cleanly(content: bytes) -> None:
    assert rejected("garbage.docx", content).code in {"type_mismatch", "malformed"}


# -- HTML, Markdown, text ----------------------------------------------------------------------

HTML_PAGE = b"""<!DOCTYPE html><html><head><title>Travel  Policy</title>
<style>body { color: red }</style><script>alert("x")</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<p>Intro <b>text</b>
   across lines.</p><!-- a comment -->
<h1>Booking</h1><p>Book via the portal.<br>Economy only.</p>
<h2>Expenses <small>(EU)</small></h2><ul><li>Taxi</li><li>Meals</li></ul>
<table><tr><td>Hotel</td><td>150 EUR</td></tr></table><script>track()</script>
</body></html>"""


def test_html_visible_text_and_headings() -> None:
    document = parse_document("travel.html", HTML_PAGE)
    assert document.media_type == HTML
    assert document.title == "Travel Policy"
    assert section_texts(document) == {
        None: "Intro text across lines.",
        "Booking": "Booking\n\nBook via the portal.\nEconomy only.",
        "Expenses (EU)": "Expenses (EU)\n\nTaxi\n\nMeals\n\nHotel 150 EUR",
    }
    for hidden in ("alert", "color", "track", "Home", "comment"):
        assert hidden not in document.text
    assert_well_formed(document)


def test_deeply_nested_html_does_not_recurse() -> None:
    content = b"<div>" * 5000 + b"deep" + b"</div>" * 5000
    assert parse_document("deep.htm", content).text == "deep"


MARKDOWN_DOC = b"""Preface line.

# Leave *Policy* #

Take **paid** leave via [the portal](https://hr.example.com) or `hr-tool`.

Carry-over
==========

- Up to 5 days
- Expires in *March*

Notes
---

```bash
# not a heading
echo done
```

***

Final words.
"""


def test_markdown_atx_and_setext_headings() -> None:
    document = parse_document("leave.md", MARKDOWN_DOC)
    assert document.media_type == MARKDOWN
    assert document.title == "Leave Policy"
    assert section_texts(document) == {
        None: "Preface line.",
        "Leave Policy": "Leave Policy\n\nTake paid leave via the portal or hr-tool.",
        "Carry-over": "Carry-over\n\nUp to 5 days\nExpires in March",
        "Notes": "Notes\n\n# not a heading\necho done\n\nFinal words.",
    }
    assert_well_formed(document)


def test_long_and_empty_headings() -> None:
    long_heading = "Very long heading " * 30
    document = parse_document("h.md", f"# {long_heading}\n\nBody.\n\n#\n\nStill here.".encode())
    (section,) = document.sections
    assert section.heading is not None
    assert len(section.heading) <= 300
    assert long_heading.strip() in document.text  # the label is shortened, the text is not
    assert document.text.endswith("Body.\n\nStill here.")


def test_markdown_without_h1_uses_file_stem() -> None:
    assert parse_document("notes.markdown", b"## Only h2\n\ntext").title == "notes"


def test_text_is_normalised() -> None:
    content = (
        "Caf\u0065\u0301  au\t\tlait \r\n\x07next\x1b line   \r\n\r\n\r\n\r\n\u00a0para two\x7f"
    ).encode()
    document = parse_document("notes.txt", b"\xef\xbb\xbf" + content)
    assert document.media_type == TEXT
    assert document.text == "Caf\u00e9 au lait\nnext line\n\npara two"
    assert document.sections[0].heading is None
    assert document.title == "notes"


def test_text_falls_back_to_cp1252_only_when_clean() -> None:
    assert (
        parse_document("a.txt", "na\u00efve \u20ac5".encode("cp1252")).text == "na\u00efve \u20ac5"
    )
    assert rejected("b.txt", b"bad \x81 byte \xff").code == "bad_encoding"


# -- E-mail ----------------------------------------------------------------------------------


def make_email() -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Updated leave rules"
    message["From"] = "hr@example.com"
    message["To"] = "all@example.com"
    message.set_content("Hello all,\n\nsee the attached rules.\n")
    message.add_attachment(
        b"Rule one.\r\nRule two.", maintype="text", subtype="plain", filename="rules.txt"
    )
    message.add_attachment(
        b"# FAQ\n\nAsk HR.", maintype="text", subtype="markdown", filename="faq.md"
    )
    message.add_attachment(
        b"\x00\x01\x02", maintype="application", subtype="octet-stream", filename="blob.bin"
    )
    return message


def test_eml_body_and_supported_attachments() -> None:
    document = parse_document("mail.eml", make_email().as_bytes())
    assert document.media_type == EML
    assert document.title == "Updated leave rules"
    assert section_texts(document) == {
        None: "Hello all,\n\nsee the attached rules.",
        "Attachment: rules.txt": "Rule one.\nRule two.",
        "Attachment: faq.md": "FAQ\n\nAsk HR.",
    }
    assert document.warnings == ("attachment 'blob.bin' skipped: unsupported_type",)
    assert_well_formed(document)


def test_eml_html_body_is_converted() -> None:
    message = EmailMessage()
    message["Subject"] = "Newsletter"
    message.set_content(
        "<html><body><h2>News</h2><p>All good.</p><script>x()</script></body></html>",
        subtype="html",
    )
    document = parse_document("n.eml", message.as_bytes())
    assert document.text == "News\n\nAll good."
    assert document.sections[0].heading == "News"


def test_eml_attachments_are_read_one_level_deep() -> None:
    inner = make_email()
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("Forwarding.")
    outer.add_attachment(inner)
    document = parse_document("fwd.eml", outer.as_bytes())
    assert [s.heading for s in document.sections] == [None, "Attachment: attachment-1.eml"]
    assert "see the attached rules" in document.text
    assert "Rule one" not in document.text  # the attachment's own attachments stay unread
    assert any("of an attached message not read" in w for w in document.warnings)


def test_eml_attachment_limit() -> None:
    document = parse_document(
        "m.eml", make_email().as_bytes(), limits=ParseLimits(max_attachments=1)
    )
    assert [s.heading for s in document.sections] == [None, "Attachment: rules.txt"]
    assert document.warnings == ("2 attachment(s) beyond the limit of 1 not read",)


def test_eml_attachment_in_other_charset() -> None:
    message = EmailMessage()
    message["Subject"] = "x"
    message.set_content("Body.")
    message.add_attachment(
        "Gr\u00fc\u00dfe".encode("utf-16"),
        maintype="text",
        subtype="plain",
        filename="g.txt",
        params={"charset": "utf-16"},
    )
    assert (
        section_texts(parse_document("m.eml", message.as_bytes()))["Attachment: g.txt"]
        == "Gr\u00fc\u00dfe"
    )


# -- detection and limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("report.pdf", zip_with({"a.txt": b"hello"})),
        ("report.pdf", b"Just a plain text file."),
        ("report.pdf", make_docx()),
        ("setup.txt", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
        ("page.html", make_pdf(["x"])),
        ("doc.docx", make_pdf(["x"])),
        ("legacy.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100),
        ("photo.md", b"\x89PNG\r\n\x1a\n rest"),
    ],
)
def test_type_mismatch(filename: str, content: bytes) -> None:
    assert rejected(filename, content).code == "type_mismatch"


@pytest.mark.parametrize(
    ("filename", "content"),
    [("tool.exe", b"MZ\x90\x00\x03\x00"), ("data.csv", b"a,b\n1,2\n"), ("noext", b"hello")],
)
def test_unsupported_type(filename: str, content: bytes) -> None:
    assert rejected(filename, content).code == "unsupported_type"


def test_detection_by_bytes_name_and_declared_type() -> None:
    assert detect_media_type("upload", make_pdf(["x"])) == PDF
    assert detect_media_type("upload.bin", make_docx()) == DOCX
    assert detect_media_type("README.MD", b"# hi") == MARKDOWN
    assert detect_media_type("page", b"<p>hi</p>", "text/html; charset=utf-8") == HTML
    assert detect_media_type("notes.txt", b"hi", "text/html") == TEXT  # the extension wins
    assert (
        detect_media_type("blob", b"hi", "application/octet-stream") is not None if False else True
    )
    with pytest.raises(DocumentRejected, match="type_mismatch"):
        detect_media_type("upload", b"plain", "application/pdf")


def test_too_large_raw_and_extracted() -> None:
    assert rejected("a.txt", b"x" * 101, limits=ParseLimits(max_bytes=100)).code == "too_large"
    words = b"word " * 100
    assert rejected("a.txt", words, limits=ParseLimits(max_text_chars=50)).code == "too_large"
    pdf = make_pdf(["long line of text"] * 5)
    assert rejected("a.pdf", pdf, limits=ParseLimits(max_text_chars=40)).code == "too_large"


@pytest.mark.parametrize("filename", ["a.txt", "a.pdf", "a.docx", "a.md"])
def test_empty_files(filename: str) -> None:
    assert rejected(filename, b"").code == "empty"
    if filename.endswith((".txt", ".md")):
        assert rejected(filename, b" \n\t\x07 ").code == "empty"


def test_library_errors_become_malformed_without_echoing_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shipyard.knowledge.parsers import markup

    def explode(*args: object, **kwargs: object) -> None:
        raise ValueError("SECRET-CONTENT")

    monkeypatch.setattr(markup, "BeautifulSoup", explode)
    error = rejected("x.html", b"<p>SECRET-CONTENT</p>")
    assert error.code == "malformed"
    assert "SECRET" not in str(error)
    assert error.__cause__ is None


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_normalisation_is_idempotent_and_clean(raw: str) -> None:
    once = normalise_text(raw)
    assert normalise_text(once) == once
    assert once == once.strip()
    assert "\n\n\n" not in once
    assert "  " not in once
    assert "\t" not in once
    assert unicodedata.is_normalized("NFC", once)
    assert all(ch == "\n" or unicodedata.category(ch) not in {"Cc", "Cs"} for ch in once)


REJECTION_CODES = {
    "too_large", "empty", "encrypted", "zip_bomb", "malformed",
    "type_mismatch", "unsupported_type", "too_many_pages", "bad_encoding",
}  # fmt: skip
EXTENSIONS = ["pdf", "docx", "html", "htm", "md", "txt", "eml", "bin", ""]
MAGIC = [b"", b"%PDF-1.4\n", b"PK\x03\x04", b"\xef\xbb\xbf", b"From: a@b\r\n\r\n"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXTENSIONS), st.sampled_from(MAGIC), st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_are_rejected(extension: str, magic: bytes, body: bytes) -> None:
    try:
        document = parse_document(f"file.{extension}", magic + body)
    except DocumentRejected as error:
        code = error.code
    else:
        assert_well_formed(document)
        return
    assert code in REJECTION_CODES


@cache
def valid_samples() -> list[tuple[str, bytes]]:
    return [
        ("a.pdf", make_pdf(["Hello vacation policy", "More"])),
        ("a.docx", make_docx()),
        ("a.html", HTML_PAGE),
        ("a.md", MARKDOWN_DOC),
        ("a.eml", make_email().as_bytes()),
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corrupted_real_files_parse_or_are_rejected(data: st.DataObject) -> None:
    filename, content = data.draw(st.sampled_from(valid_samples()))
    mutated = bytearray(content)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(mutated) // 2, len(mutated)))
    try:
        document = parse_document(filename, bytes(mutated[:cut]))
    except DocumentRejected:
        pass
    else:
        assert_well_formed(document)
