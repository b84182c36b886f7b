"""The task classifier's features: a request as text, the text as hashed n-grams and a length.

Training (:mod:`evalkit.analysis.classifier_training`) and prediction
(:class:`evalkit.router.classifier.LearnedClassifier`) call the same
:func:`featurize`, so a model sees at routing time exactly what it was fitted on.

**Text of a request** (:func:`request_text`): the ``system`` field, then every
message in order, each as ``"\\ue000<role>\\n<content>"``, joined by a blank line.
U+E000 (a private-use character) marks a role, so ``system`` the role is never
``system`` the word.

**Features of a text** (:func:`featurize`), all hashed into ``2**hash_bits`` slots:

* the text is cut to a window first: texts longer than ``head_chars + tail_chars``
  keep their first ``head_chars`` and last ``tail_chars`` characters, joined by
  ``" \\x00 "``. Cost is linear in what is hashed, so this bounds a 20k-token prompt to
  the cost of a short one; the instruction sits at the start of a prompt and the
  question at its end, and the length feature still sees the whole text;
* the window, padded with a space at each end, as UTF-8 (lone surrogates kept), ASCII
  folded to lower case, every digit to ``0``, NUL to 0x01;
* character n-grams of each size in ``char_ngrams`` (over all bytes, spaces and
  punctuation included), word unigrams and bigrams (``word_ngrams``); a word is a
  run of ASCII letters and digits or of non-ASCII bytes;
* hash: the polynomial ``h(s) = sum(b_j * P**(len-1-j)) mod 2**64`` of the bytes
  plus one (``P`` = the 64-bit FNV prime), computed for every substring at once from
  prefix sums; words are salted with ``SALT_WORD``, a bigram is
  ``(h1 * MIX2 + h2) ^ SALT_BIGRAM``; the slot is ``(h * MIX) mod 2**64 >> (64 - hash_bits)``
  (Fibonacci hashing). Stable across processes and platforms, unlike ``hash()``;
* values: sublinear term frequency ``1 + ln(count)`` per slot, scaled to unit L2 norm;
* one dense feature, ``ln(1 + characters)`` of the whole text (standardised by the model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..types import ChatRequest

__all__ = ["HASH_NAME", "ROLE_MARK", "FeatureSpec", "featurize", "request_text"]

HASH_NAME = "evalkit-poly64-v1"
"""Names the hashing scheme above; a model hashed another way is refused at load."""
ROLE_MARK = "\ue000"
TURN_SEPARATOR = "\n\n"
WINDOW_JOIN = " \x00 "

_P = 0x100000001B3  # the 64-bit FNV prime (odd, so invertible mod 2**64)
_P_INV = pow(_P, -1, 1 << 64)
_MIX = 0x9E3779B97F4A7C15  # 2**64 / golden ratio
_MIX2 = 0xC2B2AE3D27D4EB4F
SALT_WORD = 0x51ED270B27A35F1D
SALT_BIGRAM = 0x2545F4914F6CDD1D

_FOLD = bytearray(range(256))
_FOLD[0] = 1  # no byte hashes as zero, so a run of NULs still changes the hash
for _c in range(ord("A"), ord("Z") + 1):
    _FOLD[_c] = _c + 32
for _c in range(ord("0"), ord("9") + 1):
    _FOLD[_c] = ord("0")
_FOLD_TABLE = bytes(_FOLD)
_WORD = bytearray(256)
for _c in (*range(ord("a"), ord("z") + 1), *range(ord("A"), ord("Z") + 1), *range(ord("0"), ord("9") + 1),
           *range(128, 256)):
    _WORD[_c] = 1
_WORD_TABLE = bytes(_WORD)


@dataclass(frozen=True)
class FeatureSpec:
    """How text becomes features (see the module docstring); stored in the model file as is."""

    hash_bits: int = 18
    char_ngrams: tuple[int, ...] = (4,)
    word_ngrams: tuple[int, ...] = (1, 2)
    head_chars: int = 1000
    tail_chars: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "char_ngrams", tuple(self.char_ngrams))
        object.__setattr__(self, "word_ngrams", tuple(self.word_ngrams))
        problems = self.problems()
        if problems:
            field, message = problems[0]
            raise ValueError(f"{field}: {message}")

    def problems(self) -> list[tuple[str, str]]:
        """Every out-of-range field as (field, message); empty when the spec is usable."""
        out = []
        if not _is_int(self.hash_bits) or not 10 <= self.hash_bits <= 24:
            out.append(("hash_bits", f"expected a whole number from 10 to 24, got {self.hash_bits!r}"))
        if not all(_is_int(n) and 1 <= n <= 8 for n in self.char_ngrams) or len(set(self.char_ngrams)) != len(
                self.char_ngrams):
            out.append(("char_ngrams", f"expected distinct sizes from 1 to 8, got {list(self.char_ngrams)!r}"))
        if not set(self.word_ngrams) <= {1, 2} or len(set(self.word_ngrams)) != len(self.word_ngrams):
            out.append(("word_ngrams", f"expected a subset of [1, 2], got {list(self.word_ngrams)!r}"))
        if not self.char_ngrams and not self.word_ngrams:
            out.append(("char_ngrams", "no n-grams at all: give char_ngrams or word_ngrams"))
        for name in ("head_chars", "tail_chars"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= 100_000:
                out.append((name, f"expected a whole number from 0 to 100000, got {value!r}"))
        if not out and self.head_chars + self.tail_chars == 0:
            out.append(("head_chars", "the window is empty: head_chars + tail_chars must be positive"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The spec as the model file stores it, with the fixed parts spelled out for a reader."""
        return {"hash": HASH_NAME, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()},
                "text": {"role_mark": ROLE_MARK, "turn_separator": TURN_SEPARATOR, "window_join": WINDOW_JOIN},
                "normalise": "ascii lower case, digits to 0", "tf": "sublinear", "norm": "l2",
                "dense": ["log1p_chars"]}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def request_text(request: ChatRequest) -> str:
    """The text a classifier reads from a request: system text and every turn, roles marked."""
    parts = [f"{ROLE_MARK}system\n{request.system}"] if request.system else []
    parts.extend(f"{ROLE_MARK}{m.role}\n{m.content}" for m in request.messages)
    return TURN_SEPARATOR.join(parts)


def featurize(text: str, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray, float]:
    """(sorted distinct slots as int32, their L2-normalised sublinear TF as float32, ln(1 + len(text)))."""
    import math

    import numpy as np

    chars = len(text)
    if chars > spec.head_chars + spec.tail_chars:
        text = text[:spec.head_chars] + WINDOW_JOIN + text[chars - spec.tail_chars:]
    raw = f" {text} ".encode("utf-8", "surrogatepass")
    size = len(raw)
    power, inverse = _powers(size)
    codes = np.frombuffer(raw.translate(_FOLD_TABLE), np.uint8)
    prefix = np.empty(size + 1, np.uint64)  # prefix[i] = sum(code_j * P**-j for j < i), so any substring hashes in O(1)
    prefix[0] = 0
    np.cumsum(codes * inverse[:size], out=prefix[1:])
    hashes = [(prefix[n:] - prefix[:size - n + 1]) * power[n - 1:size] for n in spec.char_ngrams if n <= size]
    if spec.word_ngrams:
        is_word = np.frombuffer(raw.translate(_WORD_TABLE), np.int8)
        edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1  # padded with spaces: start, end, start, end…
        starts, ends = edges[0::2], edges[1::2]
        words = (prefix[ends] - prefix[starts]) * power[ends - 1]
        words ^= np.uint64(SALT_WORD)
        if 1 in spec.word_ngrams:
            hashes.append(words)
        if 2 in spec.word_ngrams:
            bigrams = words[:-1] * np.uint64(_MIX2) + words[1:]
            bigrams ^= np.uint64(SALT_BIGRAM)
            hashes.append(bigrams)
    mixed = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    mixed *= np.uint64(_MIX)
    mixed >>= np.uint64(64 - spec.hash_bits)
    slots = mixed.astype(np.int32)
    if slots.size == 0:
        return slots, np.empty(0, np.float32), math.log1p(chars)
    slots.sort()
    first = np.empty(slots.size, bool)
    first[0] = True
    np.not_equal(slots[1:], slots[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.empty(starts.size, np.intp)
    counts[:-1] = starts[1:] - starts[:-1]
    counts[-1] = slots.size - starts[-1]
    values = np.take(_sublinear_tf(size), counts)
    values /= math.sqrt(float(values @ values))
    return slots[starts], values, math.log1p(chars)


@lru_cache(maxsize=8)
def _sublinear_table(size: int) -> np.ndarray:
    import numpy as np

    table = np.zeros(size + 1, np.float32)
    table[1:] = 1.0 + np.log(np.arange(1, size + 1, dtype=np.float64))
    return table


def _sublinear_tf(size: int) -> np.ndarray:
    """1 + ln(k) for every count k a text of ``size`` bytes can have (a table: one take, no log per call)."""
    return _sublinear_table(_bucket(size))


@lru_cache(maxsize=8)
def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    power = np.empty(size, np.uint64)
    inverse = np.empty(size, np.uint64)
    power[0] = inverse[0] = 1
    power[1:] = _P
    inverse[1:] = _P_INV
    return np.cumprod(power, dtype=np.uint64), np.cumprod(inverse, dtype=np.uint64)  # wraps mod 2**64


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i mod 2**64 for i < size (tables grown in powers of two, so a few serve every text)."""
    return _power_tables(_bucket(size))


def _bucket(size: int) -> int:
    return max(4096, 1 << (size - 1).bit_length())
