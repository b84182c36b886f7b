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

from typing import Any, Container, Hashable

__all__ = ["SAME_CREDENTIALS", "credential_of", "shares_credentials"]

SAME_CREDENTIALS = "same_credentials"
"""The reason recorded on a target skipped because a target with its credentials failed ``auth``."""


def credential_of(target: Any) -> Hashable | None:
    """``target.credential_id()``, or ``None`` when the target cannot say."""
    identify = getattr(target, "credential_id", None)
    return identify() if callable(identify) else None


def shares_credentials(target: Any, failed: Container[Hashable]) -> Hashable | None:
    """The credential of ``target`` when it is one of ``failed``, else ``None``."""
    if not failed:
        return None
    mine = credential_of(target)
    return mine if mine is not None and mine in failed else None
