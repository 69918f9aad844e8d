"""One error hierarchy; each class carries the exit code the CLI maps it to."""

from __future__ import annotations


class FedgenError(Exception):
    """Base class. The message is one line meant for the user."""

    exit_code = 1


class InputError(FedgenError):
    """Invalid input: spec, flags, files given by the user (exit 2)."""

    exit_code = 2


class SpecErrors(InputError):
    """Several positioned spec errors, reported together and sorted by position."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


class ExternalError(FedgenError):
    """A failure outside fedgen: storage, cluster, a held lock, a missing tool (exit 3)."""

    exit_code = 3
