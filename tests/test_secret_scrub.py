"""The process-wide registry of secret values and the scrubbers that read it (``evalkit._secret``)."""

from __future__ import annotations

import json
import uuid

from evalkit._secret import Secret, known_secrets, mentions_secret, scrub, scrub_bytes


def _fake_key(label: str) -> str:
    return f"test-only-{label}-{uuid.uuid4().hex[:8]}-not-a-real-key"


def test_a_key_that_contains_another_is_replaced_whole() -> None:
    # A project key and the same key with a suffix (an org-scoped variant, say): replacing the
    # shorter one first would leave the longer one's tail in the text.
    short = _fake_key("nested")
    long = short + "-with-suffix"
    Secret(short), Secret(long)
    text = f"echo: {long} and {short}."
    assert scrub(text) == "echo: ******** and ********."
    assert scrub_bytes(text.encode()) == b"echo: ******** and ********."
    assert {short, long} <= known_secrets()


def test_a_secret_is_found_in_json_whatever_its_characters() -> None:
    key = _fake_key("quote\"and\u00e9")
    Secret(key)
    for line in (json.dumps({"output": key}), json.dumps({"output": key}, ensure_ascii=False)):
        assert mentions_secret(line.encode()), line
    assert not mentions_secret(json.dumps({"output": "nothing here"}).encode())


def test_a_key_registered_while_a_text_is_being_scrubbed_does_not_break_the_scan() -> None:
    # Providers (and so Secrets) may be made in a worker thread while the event loop scrubs a row.
    # The text below registers a key in the middle of the scan, as such a thread would.
    Secret(_fake_key("before"))

    class RegistersAKeyWhenSearched(str):
        def __contains__(self, value: object) -> bool:
            Secret(_fake_key("meanwhile"))
            return super().__contains__(value)

    text = "an answer that mentions no key"
    assert scrub(RegistersAKeyWhenSearched(text)) == text
