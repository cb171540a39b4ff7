"""A process that skips the interpreter's last collection still ends cleanly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# An object in a reference cycle that is alive at exit is freed only by the collection
# Python runs at its end: its finalizer tells whether that collection walked it.
SCRIPT = textwrap.dedent(
    """
    import atexit, os, sys
    {setup}

    class Cycle:
        def __del__(self, _write=os.write):
            _write(1, b"walked at exit\\n")

    held = Cycle()
    held.me = held
    atexit.register(lambda: sys.stderr.write("exit handler ran"))
    sys.stdout.write("unflushed output")
    """
)


def _run(setup: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + "|" + done.stderr


def test_the_final_collection_walks_live_cycles_by_default() -> None:
    # The baseline the module's docstring describes: without it, the end walks the heap.
    assert "walked at exit" in _run("")


def test_skipping_it_leaves_the_heap_alone_and_keeps_a_normal_exit() -> None:
    out = _run(
        "from metaudit.lifetime import skip_final_collection\n"
        "skip_final_collection()\nskip_final_collection()"
    )
    assert "walked at exit" not in out
    # The other exit handlers and the buffered streams' flush still happen.
    assert out.endswith("unflushed output|exit handler ran")
