"""Which targets share a credential, so one ``auth`` failure can skip the others.

A bad key for one vendor says nothing about another vendor's key, so an
``auth`` error moves a router on to the next target; but targets that call
the same endpoint with the same key would fail the same way, and are skipped
(recorded as attempts that were not sent, reason :data:`SAME_CREDENTIALS`).

A target's identity is its ``credential_id()`` (``HTTPProvider``: vendor,
base URL and a hash of the key; ``LimitedTarget``: its wrapped target's).
A target without one (a nested router, a custom provider) is unknown and
never skipped: it may well use another key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Hashable

if TYPE_CHECKING:
    from ._base import Target

__all__ = ["SAME_CREDENTIALS", "FailedCredentials", "credential_of"]

SAME_CREDENTIALS = "same_credentials"
"""The reason recorded on a target skipped because a target with its credentials failed ``auth``."""


def credential_of(target: object) -> Hashable | None:
    """``target.credential_id()``, or ``None`` when the target cannot say."""
    identify = getattr(target, "credential_id", None)
    return identify() if callable(identify) else None


class FailedCredentials:
    """The credentials that failed ``auth`` during one routed call, each with the target that failed."""

    __slots__ = ("_failed",)

    def __init__(self) -> None:
        self._failed: dict[Hashable, str] = {}

    def add(self, target: Target) -> None:
        """Remember the credential of ``target``, which failed ``auth`` (unknown credentials are not)."""
        key = credential_of(target)
        if key is not None:
            self._failed.setdefault(key, target.name)

    def why_skip(self, target: Target) -> str | None:
        """Why ``target`` is not worth sending (its credential failed), or ``None`` when it is."""
        if not self._failed:
            return None
        key = credential_of(target)
        failed = None if key is None else self._failed.get(key)
        return None if failed is None else f"same endpoint and key as {failed}, which failed auth"
