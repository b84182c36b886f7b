"""evalkit._yaml: the one YAML loader refuses alias bombs, recursion, deep nesting, huge integers and bad bytes.

The bombs run in a child process under a memory cap and a timeout (tests/bounded.py): before the safe loader,
a 700-byte routing YAML grew memory by ~90 MB/s in ``Router.from_config`` and the fleet loader hung.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit._yaml import MAX_DEPTH, load_yaml, load_yaml_file
from evalkit.errors import ConfigError
from tests.bounded import run_bounded

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, in under 700 bytes.
LAUGHS = "version: 1\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi")
)


def laughs_under(key: str) -> str:
    """The bomb, with the last level placed where a consumer will walk it."""
    return LAUGHS.replace("i: &i", f"{key}: &i", 1)


def test_the_bomb_is_small() -> None:
    assert len(LAUGHS.encode()) < 700


@pytest.mark.parametrize(
    ("what", "call", "text"),
    [
        ("router config", "import evalkit; evalkit.Router.from_config(path)",
         laughs_under("router") ),
        ("fleet", "from evalkit.emulator.fleet import load_fleet; load_fleet(path)",
         "models:\n" + "".join("  " + line + "\n" for line in LAUGHS.splitlines()[1:])),
        ("replay policy", "from evalkit.analysis import policy_from_config; policy_from_config(path)",
         LAUGHS + "router: {type: task, routes: *i, default: openai:x}\n"),
        ("export", "from evalkit.export import export_config; export_config(path, 'litellm')",
         LAUGHS + "router: {type: task, routes: *i, default: openai:x}\n"),
        ("replayed cassette", "from evalkit.runner.cassettes import cassette\n"
                              "            with cassette(path, record=False): pass",
         LAUGHS + "interactions: *i\n"),
    ],
)
def test_billion_laughs_is_refused_quickly_within_bounded_memory(tmp_path: Path, what: str, call: str,
                                                                  text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    outcome = run_bounded(f"""
        from evalkit.errors import ConfigError
        path = {str(path)!r}
        try:
            {call}
        except ConfigError as exc:
            print("refused:", exc)
        """, memory_mb=1024, timeout_s=60)
    assert not outcome.timed_out, f"{what}: still expanding the aliases after 60 s"
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    assert "refused:" in outcome.stdout and "alias" in outcome.stdout, outcome.stdout
    assert str(path) in outcome.stdout


def test_alias_bomb_error_names_file_line_and_field() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(LAUGHS, file="bomb.yaml")
    error = caught.value
    assert error.file == "bomb.yaml" and error.line is not None and error.field is not None
    assert "more than 100,000 nodes" in str(error)


def test_a_self_referencing_alias_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:1: a\[0\]: recursive alias \*a"):
        load_yaml("a: &a [*a]\n", file="x.yaml")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_yaml("a: &a {b: {c: *a}}\n")


def test_deep_nesting_is_refused() -> None:
    for text in ("a: " + "[" * 100_000 + "]" * 100_000, "a: " + "{b: " * 5_000 + "1" + "}" * 5_000):
        with pytest.raises(ConfigError, match=f"nested deeper than {MAX_DEPTH} levels") as caught:
            load_yaml(text, file="x.yaml")
        assert caught.value.line == 1
    # Aliases cannot stack shallow pieces into a deep tree either.
    nested = "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40 + "\n"
    with pytest.raises(ConfigError, match="aliases expanded"):
        load_yaml(nested)


@pytest.mark.parametrize("literal", ["1" * 5_000, "0x" + "f" * 5_000, "-" + "9" * 200, "1_0" * 60])
def test_absurd_integers_are_refused_with_their_line(literal: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(f"ok: 1\nbig: {literal}\n", file="x.yaml")
    assert caught.value.line == 2 and caught.value.field == "big"
    assert "at most 100 are accepted" in str(caught.value)


def test_non_utf8_is_refused_with_its_byte_offset_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nrouter: café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_yaml_file(path, what="routing config")
    assert caught.value.file == str(path) and caught.value.line == 2
    assert "not valid UTF-8: byte 22 (0xe9)" in str(caught.value)


def test_a_key_written_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:3: router\.type: this key is written twice"):
        load_yaml("router:\n  type: fallback\n  type: task\n", file="x.yaml")


def test_lines_are_indexed_without_expanding_aliases() -> None:
    text = "base: &base\n  retry: {deadline_s: 5}\nrouter:\n  a: *base\n  b:\n    - x\n    - *base\n"
    doc = load_yaml(text, file="x.yaml")
    assert doc.data["router"]["b"][1] == {"retry": {"deadline_s": 5}}
    assert doc.lines["base.retry.deadline_s"] == 2 and doc.lines["router.b[0]"] == 6
    assert doc.lines["router.a"] == 4 and doc.lines["router.b[1]"] == 7
    assert "router.a.retry" not in doc.lines  # below an alias: answered by the nearest ancestor
    assert doc.line("router.a.retry.deadline_s") == 4
    assert doc.error("router.b[1].retry", "bad").line == 7


def test_merge_keys_and_ordinary_documents_still_load() -> None:
    doc = load_yaml("d: &d {a: 1, b: 2}\nm: {<<: *d, b: 3}\nempty:\nlist: [1, 2.5, yes, '0x1f']\n")
    assert doc.data == {"d": {"a": 1, "b": 2}, "m": {"a": 1, "b": 3}, "empty": None, "list": [1, 2.5, True, "0x1f"]}
    assert load_yaml("").data is None


def test_files_too_large_or_missing_are_config_errors(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" * 1000)
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml_file(big, max_bytes=100)
    with pytest.raises(ConfigError, match="cannot read routing config"):
        load_yaml_file(tmp_path / "absent.yaml", what="routing config")
