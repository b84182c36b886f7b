"""Every recording in ``../shared/wire`` is replayed by some conformance test, or skipped with a reason."""

from __future__ import annotations

from . import test_anthropic_wire, test_gemini_wire, test_openai_chat_wire, test_openai_responses_wire
from .recordings import WIRE, needs_wire

MODULES = (test_openai_chat_wire, test_openai_responses_wire, test_anthropic_wire, test_gemini_wire)


@needs_wire
def test_every_recording_is_covered_or_skipped_with_a_reason() -> None:
    files = {str(p.relative_to(WIRE)) for p in WIRE.glob("*/*.yaml")}
    covered = set().union(*(m.COVERED for m in MODULES))
    skipped = {f: why for m in MODULES for f, why in m.SKIPPED.items()}
    assert all(skipped.values()), "every skip needs its reason"
    assert files - covered - set(skipped) == set(), "recordings no test replays"
    assert len(files & covered) >= 60, f"only {len(files & covered)} of {len(files)} files covered"
