"""SIGINT and SIGTERM for the tools: the first one interrupts the main thread once; later ones
(a second Ctrl-C, the launch system's SIGINT after the terminal's, its SIGTERM) arrive during
cleanup and are ignored, so cleanup runs to its end and no KeyboardInterrupt traceback is printed.
Ignored, not left to Python: at interpreter exit Python restores the default handlers, and a
signal arriving then would kill the finished tool (exit -2, which ros2 launch reports as a death).
"""
import signal


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGINT/SIGTERM; ``exit_code`` is 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


class StopSignals:
    """Install with :meth:`install` (main thread only). ``received``: names of signals seen."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: list[str] = []
        self.armed = True

    def install(self) -> "StopSignals":
        # Set explicitly: a background job of a non-interactive shell inherits SIGINT ignored.
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def disarm(self) -> None:
        """From now on SIGINT/SIGTERM are ignored (call before cleanup; main thread only)."""
        self.armed = False
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum, _frame) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.armed:
            self.armed = False
            raise Interrupted(signum)
