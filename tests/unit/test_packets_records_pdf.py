"""records.pdf, read as a person would: its index, its pages, its fonts, its look.

The builders' client CL-1 gets 70 more sessions (so the session table runs over
several pages under its header), a session note longer than a page, and text
outside ASCII (a name, a note), then its packet is built from a real check.
The PDF is read with poppler (``pdftotext``, ``pdffonts``, ``pdftoppm``) and
pypdf (bookmarks), never with what wrote it.
"""

from __future__ import annotations

import csv
import re
import subprocess
import zipfile
from datetime import date, timedelta
from pathlib import Path

import poppler
import pytest
from builders import AS_OF, clean_records, find, write_sqlite
from poppler import page_count, page_text, run

from metaudit.packets import PacketOptions, build_client_packets, evidence_from_check
from metaudit.packets import prepare_material as prepare
from metaudit.packets.content import DOCUMENTS

KEY = b"unit-test-packet-key-0123456789"
PRACTICE_NAME = "Riverside Medical Exercise"
PACKET_ID = f"PR-1/{AS_OF.isoformat()}/CL-1"
EXTRA_SESSIONS = 70
NON_ASCII_NOTE = "Zoë felt better → less pain; Größe ±2 cm"
LONG_NOTE_WORDS = [f"word{n:04d}" for n in range(900)]
NOTES_OVER_A_PAGE = {" ".join(LONG_NOTE_WORDS)}
# More characters outside ASCII than one font subset holds (256), PDF string syntax,
# a word longer than any column, a tab, a bell and Windows line ends.
CYRILLIC = "".join(chr(code) for code in range(0x0410, 0x0450)) * 2 + "".join(
    chr(code)
    for code in range(0x0460, 0x0526)  # DejaVu Sans has these
)
LONG_WORD = "x" * 60 + "Y" * 60 + "z" * 60
HOSTILE_NOTE = f"a (b) c\\d )( {CYRILLIC}\r\nnext\tline \x07bell {LONG_WORD}"

pytestmark = pytest.mark.skipif(
    not poppler.AVAILABLE,
    reason=f"needs poppler-utils ({', '.join(poppler.TOOLS)})",
)


def _records() -> dict:
    records = clean_records()
    find(records, "clients", client_id="CL-1")["first_name"] = "Zoë"
    find(records, "sessions", session_id="S-2")["notes"] = NON_ASCII_NOTE
    find(records, "sessions", session_id="S-3")["notes"] = " ".join(LONG_NOTE_WORDS)
    find(records, "sessions", session_id="S-4")["client_response"] = HOSTILE_NOTE
    template = find(records, "sessions", session_id="S-1")
    first = date(2025, 10, 1)
    for number in range(EXTRA_SESSIONS):
        day = first + timedelta(days=number)
        session = dict(template)
        session.update(
            session_id=f"S-X{number:03d}",
            session_date=day,
            signed_at=f"{day.isoformat()}T15:00:00Z",
        )
        records["sessions"].append(session)
    return records


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> Path:
    from metaudit.check.engine import check_typed, load_source
    from metaudit.spec.settings import Settings

    tmp = tmp_path_factory.mktemp("records-pdf")
    db = write_sqlite(_records(), tmp / "source.sqlite")
    settings = Settings.from_dict({})
    typed = load_source(db, AS_OF)
    result = check_typed(typed, AS_OF, ["PR-1"], settings)
    material = prepare(typed, AS_OF, "PR-1", settings)
    options = PacketOptions(packets_dir=tmp / "packets")
    build_client_packets(material, evidence_from_check(result, "PR-1"), options, key=KEY)
    with zipfile.ZipFile(options.packets_dir / "PR-1" / AS_OF.isoformat() / "CL-1.zip") as z:
        (tmp / "records.pdf").write_bytes(z.read("records.pdf"))
        (tmp / "cover.pdf").write_bytes(z.read("cover.pdf"))
        for name in z.namelist():
            if name.startswith("records/") and name.endswith(".csv"):
                (tmp / name).parent.mkdir(exist_ok=True)
                (tmp / name).write_bytes(z.read(name))
    return tmp / "records.pdf"


def _index(pdf: Path) -> list[tuple[str, int, bool]]:
    """(title, page, is a document) of every line of the index on the first page;
    a document's tables are indented under it."""
    text = page_text(pdf, 1)
    body = text[text.index("Document") :].splitlines()[1:]
    entries = []
    for line in body:
        hit = re.match(r"^(\s*)(\S.*?\S)\s{2,}(?:\d+\s+)?(\d+)\s*$", line)
        if hit:
            entries.append((hit.group(2), int(hit.group(3)), not hit.group(1)))
    return entries


def test_the_index_names_the_page_of_every_document_and_table(pdf):
    entries = _index(pdf)
    documents = [title for title, _, document in entries if document]
    assert documents == [title for _, title, _, _ in DOCUMENTS]
    tables = [title for title, _, document in entries if not document]
    assert "Sessions" in tables and "Claim lines" in tables
    assert "Outcome-measure trends" in tables  # the client has outcome measures
    pages = page_count(pdf)
    assert len(entries) >= len(DOCUMENTS) + 20
    for title, page, _ in entries:
        assert 2 <= page <= pages, title
        assert title in " ".join(page_text(pdf, page).split()), (title, page)
    # The documents follow one another, each from a page of its own.
    document_pages = [page for _, page, document in entries if document]
    assert document_pages == sorted(set(document_pages))


def test_every_record_of_the_client_is_in_the_pdf(pdf):
    """Every value of every record the packet's CSV files hold (the as-of view's
    records of the client) is in the PDF's text."""
    text = re.sub(r"\s+", "", run("pdftotext", str(pdf), "-"))
    csvs = sorted((pdf.parent / "records").glob("*.csv"))
    assert len(csvs) >= 20
    values = 0
    for path in csvs:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                for column, value in row.items():
                    if not value:
                        continue
                    shown = {"true": "yes", "false": "no"}.get(value, value)
                    if value in NOTES_OVER_A_PAGE or "bell" in value:  # tested on their own
                        continue
                    assert re.sub(r"\s+", "", shown) in text, (path.name, column, value)
                    values += 1
    assert values > 1000
    sessions = (pdf.parent / "records" / "sessions.csv").read_text().count("\nS-")
    assert sessions >= EXTRA_SESSIONS
    # The longest note, over a page, is there word by word, in order.
    positions = [text.index(word) for word in LONG_NOTE_WORDS]
    assert positions == sorted(positions)


def test_text_outside_ascii_is_selectable_text(pdf):
    text = " ".join(run("pdftotext", str(pdf), "-").split())
    assert "Zoë" in text
    assert NON_ASCII_NOTE in text


def test_hostile_text_comes_out_as_it_was_written(pdf):
    text = run("pdftotext", str(pdf), "-")
    flat = re.sub(r"\s+", "", text)
    assert "a(b)c\\d)(" in flat
    assert re.sub(r"\s+", "", CYRILLIC) in flat  # the characters of two font subsets
    assert LONG_WORD in flat  # broken over lines inside its cell, every character kept
    assert "nextline" in flat and "bell" in flat


def test_every_page_has_the_footer(pdf):
    pages = page_count(pdf)
    assert pages >= len(DOCUMENTS) + 2  # the index, a page per document, and more
    for page in range(1, pages + 1):
        text = " ".join(page_text(pdf, page).split())
        assert f"page {page} of {pages}" in text
        assert f"{PRACTICE_NAME} (practice PR-1), client CL-1, packet {PACKET_ID}" in text


def test_a_long_table_repeats_its_header_on_the_next_page(pdf):
    first = next(page for title, page, _ in _index(pdf) if title == "Sessions")
    following = page_text(pdf, first + 1)
    assert "Session" in following and "Signed at" in following
    assert "S-X" in following


def test_a_bookmark_per_document(pdf):
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    outline = [item for item in reader.outline if not isinstance(item, list)]
    titles = [item.title for item in outline]
    assert titles == ["Index", *[title for _, title, _, _ in DOCUMENTS]]
    pages = {title: page for title, page, document in _index(pdf) if document}
    for item in outline[1:]:
        assert reader.get_destination_page_number(item) + 1 == pages[item.title]


@pytest.mark.parametrize("name", ["records.pdf", "cover.pdf"])
def test_every_font_is_embedded(pdf, name):
    listing = run("pdffonts", str(pdf.parent / name)).splitlines()
    fonts = listing[2:]
    assert fonts, listing
    for line in fonts:
        # name, type, encoding, then emb sub uni as yes/no.
        flags = re.findall(r"\b(yes|no)\b", line)
        assert flags[:1] == ["yes"], line
        assert "DejaVuSans" in line, line


def test_the_first_pages_render_with_ink_where_the_text_is(pdf, tmp_path):
    import matplotlib.image

    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "4", str(pdf), str(tmp_path / "page")],
        check=True,
    )
    images = sorted(tmp_path.glob("page*.png"))
    assert len(images) == 4
    for image in images:
        pixels = matplotlib.image.imread(str(image))
        height, width = pixels.shape[:2]
        assert width > height > 200  # A4 landscape
        grey = pixels[..., :3].mean(axis=2)
        # Above the footer: the page's own content, not only the footer line.
        body = grey[: int(height * 0.85)]
        assert (body < 0.5).mean() > 0.003, image.name
        assert body.std() > 0.03, image.name


def test_the_covers_rule_table_keeps_text_outside_ascii(tmp_path):
    from metaudit.packets.content import FAIL, PASS, Cover, RuleStatus
    from metaudit.packets.render import render_cover_pdf

    # In words: the cover's cells break lines at blanks only.
    words = " ".join(CYRILLIC[k : k + 20] for k in range(0, len(CYRILLIC), 20))

    statuses = tuple(
        RuleStatus(
            rule_id=f"REF-{n:03d}",
            family="REF",
            title=f"Rule {n}",
            severity="critical",
            status=FAIL if n == 1 else PASS,
            messages=(f"Referral RF-{n} of Zoë (a) \\ {words} is not signed.",) if n == 1 else (),
        )
        for n in range(1, 4)
    )
    cover = Cover(
        practice_id="PR-1",
        practice_name=PRACTICE_NAME,
        client_id="CL-1",
        client_name="Zoë Ångström",
        date_of_birth="1958-05-01",
        client_status="active",
        as_of="2026-03-31",
        period_start="2026-03-01",
        period_end="2026-03-31",
        payers=("Acme",),
        referrals=("Referral RF-1",),
        episode=(),
        statuses=statuses,
    )
    path = tmp_path / "cover.pdf"
    path.write_bytes(render_cover_pdf(cover))
    flat = re.sub(r"\s+", "", run("pdftotext", str(path), "-"))
    assert re.sub(r"\s+", "", f"Referral RF-1 of Zoë (a) \\ {words} is not signed.") in flat
    assert "ZoëÅngström" in flat
    for line in run("pdffonts", str(path)).splitlines()[2:]:
        assert re.findall(r"\b(yes|no)\b", line)[:1] == ["yes"], line
