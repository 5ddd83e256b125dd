"""User-facing errors: bad configuration, bad data, bad genotypes.

Each carries a one-line message that names the offending field or value and
says how to fix it. The command-line entry points turn them into exit code 2.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Input the user can fix. ``str(err)`` is the whole message."""


class ConfigError(UserInputError):
    """A configuration field has an impossible value.

    >>> str(ConfigError("k", 3, "K must divide C=16: use one of 1, 2, 4, 8, 16"))
    'k=3: K must divide C=16: use one of 1, 2, 4, 8, 16'
    """

    def __init__(self, field: str, value: object, fix: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r}: {fix}")


class DataError(UserInputError):
    """A dataset is unknown, missing or malformed."""


class GenotypeError(UserInputError):
    """A genotype (text, JSON or object) is malformed or invalid."""
