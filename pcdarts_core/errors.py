"""User-facing errors: bad configuration, bad data, bad genotypes; and a run that diverged.

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


class Diverged(RuntimeError):
    """A run's training loss became NaN or infinite; its in-memory state is unusable.

    Not a :class:`UserInputError`: the input was valid, the optimisation failed. The run's last
    checkpoint (written after the last good epoch) is intact.
    """

    def __init__(self, kind: str, epoch: int, loss: float, what: str = "training loss") -> None:
        self.kind = kind
        self.epoch = epoch
        self.loss = loss
        super().__init__(
            f"{kind} diverged in epoch {epoch}: {what} is {loss}; try a lower lr or grad_clip, or another seed"
        )
