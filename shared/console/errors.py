"""Errors of the operator console.

IntakeError
└── ConsoleError
    ├── SignInRequiredError     no session, or one that ended: sign in again (permanent)
    ├── ConsoleForbiddenError   the viewer's roles do not allow this view or action
    ├── FormExpiredError        a form without this session's token (CSRF), or from elsewhere
    ├── FormUnreadableError     a form body too large or with too many fields
    └── ActionRefusedError      an action that cannot be done now (a subscription that is off)
"""

from __future__ import annotations

from shared.platform.errors import IntakeError

__all__ = [
    "ActionRefusedError",
    "ConsoleError",
    "ConsoleForbiddenError",
    "FormExpiredError",
    "FormUnreadableError",
    "SignInRequiredError",
]


class ConsoleError(IntakeError):
    """Root of console errors."""


class SignInRequiredError(ConsoleError):
    """The request carries no live session."""


class ConsoleForbiddenError(ConsoleError):
    """The viewer may not see or do this (another partner's data, an operator action)."""


class FormExpiredError(ConsoleError):
    """A state-changing form came without this session's token or from another origin."""


class ActionRefusedError(ConsoleError):
    """The action cannot be done in the state things are in (say which, and what to do)."""


class FormUnreadableError(ConsoleError):
    """A form body the console does not read: too large, or too many fields."""
