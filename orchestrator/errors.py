"""Errors of the orchestrator, on top of the core's user-input errors."""

from __future__ import annotations

from pcdarts_core.errors import UserInputError


class SpecError(UserInputError):
    """A study spec (YAML file or ``--set`` override) is invalid: names the key's path and the fix."""

    def __init__(self, path: str, problem: str, source: str = "spec") -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")

    def within(self, source: str) -> SpecError:
        """The same problem, said of another source (the YAML file's name)."""
        return SpecError(self.path, self.problem, source)


class StudyInterrupted(RuntimeError):
    """The study stopped before its stages were done (Ctrl-C or a stage left trials unfinished)."""


def error_line(error: BaseException) -> str:
    """The first line of an error's message (its type when the message is empty)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def one_line(error: BaseException) -> str:
    """An error's type and message on one line (for messages that quote a library's error)."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]
