"""The morning email renders well: headless Chromium draws it, non-blank and at most 800 px wide.

Needs Debian's ``chromium`` package (``apt-get install chromium``); without it
the test skips and says so (CI installs it, and METAUDIT_STRICT_SKIPS turns a
skip into a failure there).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from mail_builders import empty_digest, money_digest, sample_digest

from metaudit.mail.content import PAGE, build_email

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
WINDOW = (1280, 2600)


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit, non-interlaced PNG (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            up_left = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(
            bytes(line) if channels == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3)
        )
        prev = line
    return width, height, rows


def _screenshot(html: str, tmp_path: Path) -> Path:
    page = tmp_path / "email.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "email.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # root in containers has no user namespace sandbox
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert png.exists(), "chromium wrote no screenshot"
    return png


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium")
@pytest.mark.parametrize(
    "digest",
    [sample_digest(), empty_digest(), money_digest()],
    ids=["report", "all-clear", "with-money"],
)
def test_email_renders_non_blank_and_at_most_800_px_wide(digest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    email = build_email(
        digest,
        ["lead@example.org"],
        airflow_base_url="https://airflow.example.org",
        packets_base_url="https://airflow.example.org",
        sender="audit@example.org",
    )
    assert email is not None
    width, height, rows = _decode_png(_screenshot(email.html, tmp_path).read_bytes())
    assert (width, height) == WINDOW
    page = bytes.fromhex(PAGE.lstrip("#"))
    # Columns and rows holding anything but the page background are the email's content.
    columns: set[int] = set()
    content_rows = 0
    dark = 0
    colours: set[bytes] = set()
    for row in rows[::2]:
        hit = False
        for x in range(0, width, 2):
            pixel = row[3 * x : 3 * x + 3]
            if pixel != page:
                columns.add(x)
                hit = True
                colours.add(pixel)
                if sum(pixel) < 200:  # text in ink colour
                    dark += 1
        content_rows += hit
    assert columns, "the screenshot is blank"
    content_width = max(columns) - min(columns) + 2
    assert 560 <= content_width <= 800, content_width
    assert content_rows * 2 >= 200, "almost nothing was drawn"
    assert dark > 500, "no text was drawn"
    assert len(colours) > 20, "a flat image: the layout did not render"
