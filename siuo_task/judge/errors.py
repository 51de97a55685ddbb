"""The judge's two errors: the endpoint cannot be used at all, or judging had to stop at once."""


class JudgeUnavailable(RuntimeError):
    """The judge endpoint cannot be used (missing key, unreachable, key rejected, ...)."""


class JudgeFatal(JudgeUnavailable):
    """Judging stopped at once: every further call would fail the same way (key rejected, model not
    found, a request shape the endpoint refuses). The message names the cause and the endpoint."""
