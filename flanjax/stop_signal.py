"""Stopping a training run on a signal: SIGTERM (a preemption notice, a SLURM time
limit) and SIGINT (Ctrl-C) end the run cleanly at a step boundary, with a checkpoint
(the trainer's loop asks `StopSignal.requested()` after every step)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import jax
import numpy as np

log = logging.getLogger(__name__)


class StopSignal:
    """SIGTERM and SIGINT (Ctrl-C) handling for the training loop: the handler only
    sets a flag; the loop asks `requested()` after every step, then saves a checkpoint
    at that step and returns. A second SIGINT aborts at once (the process dies of it;
    the newest complete checkpoint stays valid). Restores the previous handlers on exit.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals, self.received, self._previous = signals, None, {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        else:
            log.warning("not in the main thread: SIGTERM will not stop training cleanly")
        return self

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.received is not None:
            os.write(2, b"\nflanjax: second interrupt: aborting now\n")
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            return
        self.received = signal.Signals(signum).name
        if signum == signal.SIGINT:  # a person at a terminal: say what happens next
            os.write(
                2,
                b"\nflanjax: interrupt: finishing this step and saving a checkpoint "
                b"(Ctrl-C again aborts at once)\n",
            )

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def requested(self) -> bool:
        """Whether to stop now; in a multi-process run, whether any process got a signal
        (every process calls this at every step, so all stop at the same step)."""
        stop = self.received is not None
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            stop = bool(np.asarray(multihost_utils.process_allgather(np.int32(stop))).max())
        return stop
