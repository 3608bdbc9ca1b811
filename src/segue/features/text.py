"""Playlist-title normalisation for matching titles to titles (the ``title`` model's key).

:func:`normalize_title` maps the many spellings of one playlist name to one key::

    "Chiiill 😎"  →  "chill sunglass"        "WORKOUTS!!"  →  "workout"

It builds on the MPD's own normaliser (:func:`segue.analysis.eda.normalize_name_mpd`: lowercase,
the MPD's punctuation to spaces, whitespace collapsed), so titles the MPD counts as one name stay
one name here, and then goes further, in this order:

1. **emoji to words**, with the ``emoji`` package's short aliases (``"😎"`` → ``sunglasses``,
   ``"💪"`` → ``muscle``; the full CLDR names such as ``smiling_face_with_sunglasses`` drown the
   rest of a short title in n-grams). Skin-tone modifiers and the emoji variation selector are
   dropped first, so ``"💪🏽"`` is ``"💪"``; a run of one emoji repeated (``"🔥🔥🔥"``) is one word.
2. **compatibility folding**: NFKD, combining marks dropped, NFC — accents go (``"música"`` →
   ``"musica"``), and the stylised letters of fancy-text generators become plain ones
   (``"𝓬𝓱𝓲𝓵𝓵"`` → ``"chill"``); then casefold (``"ß"`` → ``"ss"``).
3. **punctuation**: apostrophes are deleted (``"90's"`` → ``"90s"``), ``&`` becomes ``and``
   (``"R&B"`` → ``"r and b"``), everything else that is not a letter or digit becomes a space.
4. **letter stretching**: a run of 3+ of the same letter becomes **one** letter. English has no
   tripled letters, and people mostly stretch letters that are single (``"chiiiill"`` →
   ``"chill"``, ``"sooo"`` → ``"so"``); a stretched double (``"chilllll"`` → ``"chil"``) comes
   out short but still shares most character n-grams with the right title, which is how the
   ``title`` model matches near misses. Digits are never collapsed (``"2000"`` stays).
5. **light stemming**: Snowball English per word (``"workouts"`` → ``"workout"``, ``"vibes"`` →
   ``"vibe"``). Stems can look odd (``"country"`` → ``"countri"``) — they are keys, not labels.
6. whitespace collapsed and stripped; a title with nothing left is ``""``.

:func:`normalize_titles` / :func:`factorize_titles` do whole columns: they normalise each
distinct raw title once (the MPD's 1M titles hold far fewer distinct strings) and stem each
distinct word once.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import emoji
import numpy as np
import snowballstemmer

from segue.analysis.eda import normalize_name_mpd

# Skin tones (U+1F3FB..U+1F3FF) and the emoji presentation selector carry no meaning for matching.
_EMOJI_NOISE = {cp: None for cp in (*range(0x1F3FB, 0x1F400), 0xFE0F)}
# demojize wraps each alias in these two control characters so repeats can be found, then they
# become spaces (they are not letters, so the punctuation step would remove them anyway).
_OPEN, _CLOSE = "\x02", "\x03"
_REPEATED_EMOJI_RE = re.compile(f"({_OPEN}[^{_CLOSE}]*{_CLOSE})(?:\\s*\\1)+")
_APOSTROPHE_RE = re.compile("['’‘`´]")
_NON_WORD_RE = re.compile(r"[\W_]+")  # anything but letters and digits
_STRETCH_RE = re.compile(r"([^\W\d_])\1{2,}")  # a letter 3+ times in a row
_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=1 << 18)
def _stem(word: str) -> str:
    # Cached: a column of 1M titles has only ~100K distinct words.
    return _STEMMER.stemWord(word)


def normalize_title(title: str | None) -> str:
    """The matching key of one playlist title (see the module docstring for the steps).

    >>> normalize_title("Chiiill 😎")
    'chill sunglass'
    >>> normalize_title("WORKOUTS!!")
    'workout'
    >>> normalize_title("🔥🔥 Summer   Vibes 🔥")
    'fire summer vibe fire'
    >>> normalize_title("R&B / Soul")
    'r and b soul'
    >>> normalize_title("90's Música")
    '90s musica'
    >>> normalize_title("𝓬𝓱𝓲𝓵𝓵 💪🏽")
    'chill muscl'
    >>> normalize_title("rock_pop-2017")
    'rock pop 2017'
    >>> normalize_title("...") == normalize_title(None) == ""
    True
    """
    if not title:
        return ""
    text = normalize_name_mpd(title)
    if not text.isascii():
        text = text.translate(_EMOJI_NOISE)
        text = emoji.demojize(text, language="alias", delimiters=(_OPEN, _CLOSE))
        text = _REPEATED_EMOJI_RE.sub(r"\1", text)
        text = unicodedata.normalize("NFKD", text)
        text = unicodedata.normalize(
            "NFC", "".join(c for c in text if not unicodedata.combining(c))
        )
    text = _APOSTROPHE_RE.sub("", text.casefold()).replace("&", " and ")
    text = _STRETCH_RE.sub(r"\1", _NON_WORD_RE.sub(" ", text))
    return " ".join(_stem(word) for word in text.split())


@dataclass
class TitleFactors:
    """A column of titles factorised by normalised key.

    Attributes:
        uniques: the distinct non-empty keys, sorted (list of ``k`` str).
        codes: int32 [n], each title's index in ``uniques``; -1 where the key is empty.
        examples: list of ``k`` str, the most common raw spelling of each key (stripped; ties go
            to the spelling seen first) — a readable label where the key itself is a stem.
        counts: int64 [k], how many titles have each key.
    """

    uniques: list[str]
    codes: np.ndarray
    examples: list[str]
    counts: np.ndarray


def factorize_titles(titles: Iterable[str | None]) -> TitleFactors:
    """Normalise a whole column, each distinct raw title once; see :class:`TitleFactors`.

    >>> f = factorize_titles(["Chill", "chill!", "Rock", "", "CHILL!", "chill!", None])
    >>> f.uniques, f.codes.tolist(), f.examples, f.counts.tolist()
    (['chill', 'rock'], [0, 0, 1, -1, 0, 0, -1], ['chill!', 'Rock'], [4, 1])
    """
    index: dict[str, int] = {}
    raw_codes = np.fromiter((index.setdefault(t or "", len(index)) for t in titles), dtype=np.int64)
    raw = list(index)  # distinct raw titles, first-seen order
    keys = [normalize_title(t) for t in raw]
    uniques = sorted(set(keys) - {""})
    key_index = {k: i for i, k in enumerate(uniques)}
    raw_to_key = np.array([key_index.get(k, -1) for k in keys], dtype=np.int32).reshape(-1)
    codes = raw_to_key[raw_codes] if len(raw_codes) else np.zeros(0, dtype=np.int32)
    # The example of each key: its most frequent raw spelling (first seen on ties).
    raw_counts = np.bincount(raw_codes, minlength=len(raw))
    keep = np.flatnonzero(raw_to_key >= 0)
    order = keep[np.lexsort((keep, -raw_counts[keep], raw_to_key[keep]))]
    first = (
        order[np.r_[True, raw_to_key[order][1:] != raw_to_key[order][:-1]]] if len(order) else order
    )
    examples = [raw[r].strip() for r in first.tolist()]
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques)).astype(np.int64)
    return TitleFactors(uniques, codes.astype(np.int32), examples, counts)


def normalize_titles(titles: Iterable[str | None]) -> list[str]:
    """:func:`normalize_title` of each title, computed once per distinct title.

    >>> normalize_titles(["Chill", "chill!", None, "Workouts"])
    ['chill', 'chill', '', 'workout']
    """
    factors = factorize_titles(titles)
    table = [*factors.uniques, ""]  # code -1 picks the trailing ""
    return [table[c] for c in factors.codes.tolist()]
