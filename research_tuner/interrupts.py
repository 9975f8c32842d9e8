"""Stopping on SIGTERM / Ctrl-C: an interrupt ends the step at once instead of being retried.

Dagster turns SIGINT and SIGTERM into an interrupt inside the running step, but a step with a
RetryPolicy treats that interrupt as a reason to retry (after the policy's delay, 30 s and more for the
teacher steps), so a `research-tuner run` seemed to ignore SIGTERM. Steps wrapped with
`stop_on_interrupt` fail at once with a non-retryable `dg.Failure` instead. Nothing already written is
lost: the lake writes each partition atomically and the teacher cache keeps every answer that arrived, so
a rerun resumes where the run stopped.
"""

import functools
import inspect
import os
import signal
import sys
import threading

import dagster as dg

INTERRUPTED = "interrupted (SIGTERM or Ctrl-C): stopped without retrying"


def _stopped(exc: BaseException) -> dg.Failure:
    return dg.Failure(
        description=f"{INTERRUPTED}. Partitions already written and teacher answers already cached are kept; "
        "rerun to resume.",
        allow_retries=False,
    )


def stop_on_interrupt(fn):
    """Decorate an asset's compute function (below @dg.asset): an interrupt becomes a non-retryable failure."""
    interrupts = (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except interrupts as exc:
                raise _stopped(exc) from exc

        return generator

    @functools.wraps(fn)
    def function(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except interrupts as exc:
            raise _stopped(exc) from exc

    return function


class StopSignals:
    """For a command-line run: SIGTERM behaves like Ctrl-C, and a second signal exits at once.

    The first SIGINT or SIGTERM interrupts the running step (Dagster raises it there, and
    `stop_on_interrupt` keeps it from being retried). Dagster replaces the Python signal handlers while
    a job runs, so which signal arrived is read from the C-level wakeup fd, which sees every handled
    signal whatever Python handler runs. A second signal (say, during a retry's wait, where Dagster only
    notes the interrupt) ends the process at once; the lake's atomic writes and the teacher cache keep
    everything already finished.
    """

    def __init__(self, out=None):
        self.out = out
        self.received: int | None = None
        self.arrived = threading.Event()
        self._count = 0

    def __enter__(self) -> "StopSignals":
        import socket

        self._active = threading.current_thread() is threading.main_thread()
        if not self._active:  # signal handlers can only be set from the main thread
            return self
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._old_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        self._watcher = threading.Thread(target=self._watch, name="stop-signals", daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        while True:
            try:
                data = self._reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in (signal.SIGINT, signal.SIGTERM):
                    self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        self._count += 1
        self.received = self.received or signum
        self.arrived.set()
        name = signal.Signals(signum).name
        out = self.out or sys.stderr
        if self._count == 1:
            print(f"\n{name} received: stopping the current step (send it again to exit at once)", file=out, flush=True)
        else:
            print(f"{name} received again: exiting now; finished partitions are kept", file=out, flush=True)
            os._exit(128 + signum)

    @property
    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.received or signal.SIGINT).name

    def __exit__(self, *exc) -> None:
        if not self._active:
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_fd)
        self._writer.close()
        self._reader.close()  # ends the watcher's recv
        self._watcher.join(2)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)
