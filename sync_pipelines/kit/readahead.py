"""Reading ahead: the next batch is read from the vendor in a thread while this one is written.

A sync otherwise waits on the vendor and on the database in turn; with a batch read ahead the
two waits overlap. At most ``depth`` batches wait in between, so memory stays flat.

    with read_ahead(read_stream(device)) as batches:
        for batch in batches:
            store(batch)
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


@contextlib.contextmanager
def read_ahead(batches: Iterable[T], *, depth: int = 1) -> Iterator[Iterator[T]]:
    """``batches``, each read ahead while the caller handles the one before.

    A failure while reading is raised where the batch it broke would have come. Leaving the
    block (done, or the caller's own failure) lets the read in progress finish and reads
    nothing more: the source is never used from two threads at once.
    """
    reader = _read_ahead(batches, depth)
    try:
        yield reader
    finally:
        reader.close()


def _read_ahead(batches: Iterable[T], depth: int) -> Iterator[T]:
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce() -> None:
        source = iter(batches)
        try:
            for batch in source:
                put((batch, None))
                if stop.is_set():
                    break
            else:
                put((_END, None))
        except BaseException as exc:  # handed over, raised in the caller's thread
            put((_END, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's own cleanup, in the thread that ran it

    # The reader runs in the caller's context (context variables: a run's log, redaction).
    reader = threading.Thread(target=contextvars.copy_context().run, args=(produce,),
                              name="read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            batch, error = handoff.get()
            if error is not None:
                raise error
            if batch is _END:
                return
            yield batch
    finally:
        stop.set()
        reader.join()
