"""The end of a process that holds large imports (Airflow, Great Expectations, pandas).

When Python exits it runs its cyclic garbage collector once more over every object
still alive, to call the finalizers of unreachable cycles, and then frees the modules.
In a process that holds Airflow's in-process execution API, Great Expectations and
pandas, that one walk of the heap takes seconds: 2.5 s after an `airflow dags test` of
a DAG whose tasks do nothing, 3.3 s after a night of 20 practices, 1.1 s after
`metaudit check` of 100,000 sessions (on this project's 2-core reference machine),
while the memory is about to go back to the operating system whole.

:func:`skip_final_collection` freezes the heap at exit (:func:`gc.freeze`: the
objects alive then are left out of every later collection, the last one included).
Everything else of a normal exit still happens: the other exit handlers (logging's
flush and close among them), the modules' teardown, the buffered streams' flush. What
is given up are the finalizers of objects caught in reference cycles at exit, and
nothing here relies on one: files, archives, connections and the results store are
closed by their ``with`` blocks, and a process that ends some other way (a signal,
``os._exit``) never had that collection anyway.

A low-level module: it imports nothing of the project.
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_collection() -> None:
    """Freeze the heap when this process exits, so its end does not walk every live
    object once more (see the module's docstring). Calling it again does nothing."""
    global _registered
    if not _registered:
        # Exit handlers run last-registered first: this one, registered after the
        # imports, runs before those of logging and of the libraries.
        atexit.register(gc.freeze)
        _registered = True
