"""Change notices: a data function that commits a change the running controller must follow
says so on its session; whoever owns the session forwards the notices once it is done.

The data functions (inventory, import, programs and calendars, overrides) call
:func:`note_change` after their commit succeeded, so a notice always means a committed change.
The API's session dependency forwards them to the in-process controller
(:func:`forward_changes`), which reloads at once and, in a cluster, tells the other instances.
Which writes need a reload is decided here, beside the writes, not by URL prefixes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

_NOTICES = "streetlight.changes"


class ConfigChange(StrEnum):
    """What a committed write changed, as far as the running controller is concerned."""

    CONFIGURATION = "configuration"
    """Gateways, lamp types, luminaires, groups, programs or calendars: read all again."""
    OVERRIDES = "overrides"
    """Only overrides: only they are read again (fast, even for a whole city)."""


class ChangeListener(Protocol):
    """Follows committed changes (the running controller)."""

    def request_reload(self, *, overrides_only: bool = False) -> None: ...


def note_change(session: AsyncSession, change: ConfigChange) -> None:
    """Record on ``session`` that it committed ``change``."""
    notices: set[ConfigChange] = session.info.setdefault(_NOTICES, set())
    notices.add(change)


def take_changes(session: AsyncSession) -> frozenset[ConfigChange]:
    """The notices recorded on ``session`` so far, removed from it."""
    return frozenset(session.info.pop(_NOTICES, ()))


def forward_changes(session: AsyncSession, listener: ChangeListener | None) -> None:
    """Tell ``listener`` (if any) about the changes ``session`` committed: one reload."""
    changes = take_changes(session)
    if listener is not None and changes:
        listener.request_reload(overrides_only=changes == {ConfigChange.OVERRIDES})
