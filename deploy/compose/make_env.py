"""Write the compose stack's ``.env`` from ``.env.example`` with fresh random secrets.

    python3 deploy/compose/make_env.py            # writes ./.env (refuses to overwrite)
    python3 deploy/compose/make_env.py --force    # replaces it (new secrets: a used
                                                  # database volume keeps the old passwords)

Every ``change-me`` becomes a random hex secret (letters and digits, safe in
connection JSON and URLs); ``AIRFLOW_FERNET_KEY`` becomes a Fernet key and
``AIRFLOW_UID`` the current user's id, so files on bind mounts stay yours. An
empty ``METAUDIT_PACKET_SIGNING_KEY`` gets a fresh Ed25519 key from
``openssl genpkey`` (left empty, with a warning, without OpenSSL 3).
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("make_env")

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "change-me"
SIGNING_KEY = "METAUDIT_PACKET_SIGNING_KEY"


def fernet_key() -> str:
    """A Fernet key: 32 random bytes, url-safe base64 (what Airflow's FERNET_KEY takes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def ed25519_pem() -> str | None:
    """A fresh Ed25519 private key (PEM, its line breaks written ``\\n``), or None
    without an OpenSSL that makes one."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    made = subprocess.run(
        [openssl, "genpkey", "-algorithm", "ed25519"], capture_output=True, text=True
    )
    if made.returncode != 0 or "PRIVATE KEY" not in made.stdout:
        return None
    return "\\n".join(made.stdout.strip().splitlines()) + "\\n"


def fill(example: str, uid: int | None) -> str:
    """The text of ``.env``: the example with every placeholder replaced by a secret."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            if value.strip() == PLACEHOLDER:
                value = (
                    fernet_key() if name.strip() == "AIRFLOW_FERNET_KEY" else secrets.token_hex(24)
                )
            elif name.strip() == "AIRFLOW_UID" and uid is not None:
                value = str(uid)
            elif name.strip() == SIGNING_KEY and not value.strip():
                value = ed25519_pem() or ""
                if not value:
                    log.warning(
                        "%s left empty (no OpenSSL 3 to make an Ed25519 key): packets "
                        "carry the HMAC alone",
                        SIGNING_KEY,
                    )
            line = f"{name}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=REPO / ".env.example")
    parser.add_argument("--out", type=Path, default=REPO / ".env")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.out.exists() and not args.force:
        log.error("%s exists; keep it, or pass --force to replace its secrets", args.out)
        return 1
    uid = os.getuid() if hasattr(os, "getuid") else None
    text = fill(args.example.read_text(), uid)
    # Written owner-only from the start: it holds every secret of the stack.
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
