"""Errors a user can cause. The CLI maps every one of them to exit code 2 and prints its message."""

from __future__ import annotations


class DcschedError(Exception):
    """Base class of the errors dcsched raises on bad user input."""


class ConfigError(DcschedError):
    """A recipe, scenario or override is wrong.

    The message always names the file (or "command line"), the key path and what is allowed.
    """

    def __init__(self, source: str, key: str, problem: str, allowed: str | None = None):
        self.source, self.key, self.problem, self.allowed = source, key, problem, allowed
        msg = f"{source}: key '{key}': {problem}"
        if allowed:
            msg += f" (allowed: {allowed})"
        super().__init__(msg)


class Terminated(BaseException):
    """The process was sent SIGTERM (a scheduler's preemption). The CLI exits 143 (128 + 15), a
    code schedulers requeue on, after a training run has finished its batch and written last.ckpt.
    A BaseException, so that no ``except Exception`` swallows it."""


class UnknownComponentError(DcschedError, KeyError):
    """A registry name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataError(DcschedError):
    """A shipped or user-provided trace is malformed (NaN, gap, non-monotone index, bad range)."""
