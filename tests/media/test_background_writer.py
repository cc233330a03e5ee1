"""BackgroundWriter: the encoder thread of evss segment keeps order, bounds memory, and hands errors back."""

from __future__ import annotations

import threading

import pytest

from evss.media import BackgroundWriter


def test_items_are_written_in_order_and_close_drains():
    out = []
    w = BackgroundWriter(out.append, depth=2)
    for i in range(50):
        w.put(i)
    w.close()
    assert out == list(range(50))


def test_the_queue_is_bounded():
    release = threading.Event()
    started = threading.Event()

    def slow(item):
        started.set()
        release.wait(timeout=30)

    w = BackgroundWriter(slow, depth=2)
    w.put(0)
    assert started.wait(timeout=30)  # item 0 is being written
    w.put(1)
    w.put(2)  # the queue holds 2
    blocked = threading.Thread(target=w.put, args=(3,), daemon=True)
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive()  # a third queued item waits for room
    release.set()
    blocked.join(timeout=30)
    w.close()


def test_a_writer_error_reaches_the_caller_and_later_items_are_dropped():
    written = []

    def write(item):
        if item == 2:
            raise OSError(28, "No space left on device")
        written.append(item)

    w = BackgroundWriter(write, depth=1)
    with pytest.raises(OSError, match="No space"):
        for i in range(100):
            w.put(i)
        w.close()
    assert written == [0, 1]
