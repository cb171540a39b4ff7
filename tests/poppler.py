"""PDFs read as a person would, with poppler's tools (poppler-utils: `make system-deps`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

TOOLS = ("pdftotext", "pdffonts", "pdftoppm", "pdfinfo")
AVAILABLE = all(shutil.which(tool) for tool in TOOLS)


def run(*command: str) -> str:
    """A poppler tool's standard output (it must succeed)."""
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def page_count(pdf: Path) -> int:
    """How many pages the PDF has."""
    found = re.search(r"^Pages:\s+(\d+)", run("pdfinfo", str(pdf)), re.M)
    assert found is not None, f"pdfinfo gave no page count for {pdf}"
    return int(found.group(1))


def page_text(pdf: Path, page: int) -> str:
    """One page's text, laid out as on the page."""
    return run("pdftotext", "-layout", "-f", str(page), "-l", str(page), str(pdf), "-")
