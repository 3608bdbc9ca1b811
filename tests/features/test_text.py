"""Title normalisation: hand-worked cases, column versions, and properties of every output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segue.features.text as text
from segue.analysis.eda import normalize_name_mpd
from segue.features.text import factorize_titles, normalize_title, normalize_titles


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Chill", "chill"),
        ("  CHILL  ", "chill"),
        ("Chiiill 😎", "chill sunglass"),  # stretch to one letter, emoji alias, stem
        ("chiiiilll", "chil"),  # a stretched double comes out short (documented)
        ("Workouts", "workout"),
        ("WORKOUT!!!", "workout"),
        ("work-out", "work out"),
        ("🔥", "fire"),
        ("🔥🔥🔥", "fire"),  # a repeated emoji is one word
        ("🔥 🔥 lit", "fire lit"),
        ("💪🏽 gym", "muscl gym"),  # skin tone dropped, then stemmed
        ("❤️ love songs", "heart love song"),  # variation selector dropped
        ("90's", "90s"),
        ("90’s hits", "90s hit"),
        ("R&B", "r and b"),
        ("r & b", "r and b"),
        ("Música Latina", "musica latina"),
        ("𝓬𝓱𝓲𝓵𝓵 𝓿𝓲𝓫𝓮𝓼", "chill vibe"),  # fancy-text letters
        ("ＣＨＩＬＬ", "chill"),  # full-width letters
        ("Straße", "strass"),
        ("2000s", "2000s"),
        ("1000", "1000"),  # digits are never collapsed
        ("rock_pop/2017 (live)", "rock pop 2017 live"),
        ("sooo good", "so good"),
        ("", ""),
        ("!!! ...", ""),
        ("\t\n", ""),
    ],
)
def test_hand_worked_titles(raw, key):
    assert normalize_title(raw) == key


def test_none_is_empty():
    assert normalize_title(None) == ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Chill!!", "chill"),
        ("Work   Out", "work out"),
        ("rock/pop (2017)", "Rock Pop 2017"),
        ("#throwback", "throwback"),
        ("Road Trip", "road trip "),
    ],
)
def test_titles_the_mpd_counts_as_one_stay_one(a, b):
    assert normalize_name_mpd(a) == normalize_name_mpd(b)
    assert normalize_title(a) == normalize_title(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("workouts", "Workout"),
        ("chill vibes", "Chill  Vibes!"),
        ("90's", "90s"),
        ("rnb", "RNB!"),
        ("summer 🔥🔥", "Summer 🔥"),
        ("party 🎉", "party 🎉🎉🎉"),
    ],
)
def test_spellings_that_should_match_do(a, b):
    assert normalize_title(a) == normalize_title(b)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_output_is_words_of_letters_and_digits(raw):
    key = normalize_title(raw)
    assert key == key.strip() and "  " not in key
    assert all(c.isalnum() or c == " " for c in key), key


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Chill", "chill!", "", "Workouts", "R&B", "🔥🔥", "rock", "ROCK", "x"]),
        max_size=30,
    )
)
def test_column_versions_agree_with_the_single_one(titles):
    keys = [normalize_title(t) for t in titles]
    assert normalize_titles(titles) == keys
    factors = factorize_titles(titles)
    assert factors.uniques == sorted(set(keys) - {""})
    assert factors.codes.dtype == np.int32 and len(factors.codes) == len(titles)
    for key, code in zip(keys, factors.codes.tolist(), strict=True):
        assert (code == -1) if key == "" else factors.uniques[code] == key
    assert factors.counts.tolist() == [keys.count(u) for u in factors.uniques]
    assert len(factors.examples) == len(factors.uniques)
    for u, example in zip(factors.uniques, factors.examples, strict=True):
        assert normalize_title(example) == u


def test_examples_are_the_most_common_spelling():
    factors = factorize_titles(["Chill", "chill!", "CHILL", "chill!", "Rock ", "rock", None])
    assert factors.uniques == ["chill", "rock"]
    assert factors.examples == ["chill!", "Rock"]  # most common; a tie goes to the first seen
    assert factors.codes.tolist() == [0, 0, 0, 0, 1, 1, -1]
    assert factors.counts.tolist() == [4, 2]


def test_each_distinct_title_is_normalised_once(monkeypatch):
    calls = []
    real = text.normalize_title
    monkeypatch.setattr(text, "normalize_title", lambda t: calls.append(t) or real(t))
    titles = ["chill", "Chill", "rock", "chill", "", "rock"] * 1000
    assert len(normalize_titles(titles)) == 6000
    assert sorted(calls) == ["", "Chill", "chill", "rock"]


def test_empty_column():
    factors = factorize_titles([])
    assert factors.uniques == [] and factors.codes.shape == (0,) and factors.examples == []
    assert normalize_titles([]) == []
