"""The one exception labkit raises for a learner's or an instructor's mistake."""

from __future__ import annotations


class LabkitError(Exception):
    """A problem the user can fix. Its message says what happened and what to do.

    The CLI prints it as one line and exits non-zero; it never shows a traceback.
    """
