"""read_ahead: batches in order, at most ``depth`` read ahead, failures raised where they
happened, and an early stop that waits for the read in progress and reads nothing more."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from sync_pipelines.kit import read_ahead


def test_batches_come_in_order_and_the_source_is_read_in_another_thread():
    threads = set()

    def batches():
        for n in range(5):
            threads.add(threading.current_thread().name)
            yield [n] * 3

    with read_ahead(batches()) as reader:
        assert list(reader) == [[n] * 3 for n in range(5)]
    assert threads == {"read-ahead"}
    with read_ahead(iter([])) as reader:
        assert list(reader) == []


def test_at_most_depth_batches_are_read_ahead_of_the_caller():
    read = []

    def batches():
        for n in range(10):
            read.append(n)
            yield n

    with read_ahead(batches(), depth=2) as reader:
        assert next(reader) == 0
        time.sleep(0.3)
        # Handed out 0; 1 and 2 wait in the queue; 3 is read and waits to be put.
        assert read == [0, 1, 2, 3]
        assert list(reader) == list(range(1, 10))


def test_a_failure_while_reading_is_raised_after_the_batches_before_it():
    def batches():
        yield 1
        yield 2
        raise ConnectionResetError("vendor hung up")

    got = []
    with pytest.raises(ConnectionResetError, match="vendor hung up"), read_ahead(batches()) as reader:
        for batch in reader:
            got.append(batch)
    assert got == [1, 2]


def test_stopping_early_lets_the_read_in_progress_finish_and_reads_nothing_more():
    read, closed_in = [], []

    def batches():
        try:
            for n in range(100):
                time.sleep(0.05)  # a request in flight
                read.append(n)
                yield n
        finally:
            closed_in.append(threading.current_thread().name)

    with pytest.raises(RuntimeError, match="database went away"), read_ahead(batches()) as reader:
        for batch in reader:
            if batch == 2:
                raise RuntimeError("database went away")
    # Leaving the block waited for the reader: it has closed the source and stopped.
    assert closed_in == ["read-ahead"]
    stopped_at = len(read)
    time.sleep(0.2)
    assert len(read) == stopped_at <= 5


def test_the_reader_sees_the_callers_context_variables():
    run_id = contextvars.ContextVar("run_id", default=None)
    run_id.set("run-42")

    def batches():
        yield run_id.get()

    with read_ahead(batches()) as reader:
        assert list(reader) == ["run-42"]
