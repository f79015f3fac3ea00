"""Errors that genzoo raises on purpose (besides ValueError and sklearn's NotFittedError)."""


class UnsupportedError(Exception):
    """A family was asked for something it cannot do (e.g. a GAN's likelihood)."""


def did_you_mean(word: object, choices) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``choices`` to a misspelt ``word``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
