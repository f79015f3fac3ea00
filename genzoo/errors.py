"""Errors that genzoo raises on purpose (besides ValueError and sklearn's NotFittedError)."""


class UnsupportedError(Exception):
    """A family was asked for something it cannot do (e.g. a GAN's likelihood)."""
