"""The one kind of error a user can fix.

`UserError` is what something the user gave (options, a manifest, audio, pseudo-labels, a
model directory) raises when it cannot be used: the CLI prints its message on one line and
exits with 2. Any other exception is a bug in audiodistill and keeps its traceback. Each
subclass also derives from the built-in error it used to be, so library callers that catch
ValueError or FileNotFoundError still do.
"""

from __future__ import annotations


class UserError(Exception):
    """Unusable input; the message says what and where, for the user to fix."""


class DataError(UserError, ValueError):
    """Data (utterances, pseudo-labels) that a stage cannot use; raised before work starts."""


class ModelError(UserError, FileNotFoundError):
    """A path that is not the model a command needs: missing, or a model of another kind."""
