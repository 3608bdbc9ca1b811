"""Catalog lookup and search against brute-force references (in-process, no HTTP)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from segue.catalog import Catalog, fold, query_words, words

WORDS = [
    "love",
    "lover",
    "lonely",
    "night",
    "nightmare",
    "blue",
    "blues",
    "río",
    "café",
    "don't",
    "x",
]


def random_catalog(n: int = 3000, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = [" ".join(rng.choice(WORDS, size=rng.integers(1, 4))).title() for _ in range(n)]
    artists = [f"{rng.choice(WORDS).upper()} & the {rng.choice(WORDS)}s" for _ in range(n)]
    table = pa.table(
        {
            "track_uri": [f"spotify:track:{i:06d}" for i in range(n)],
            "track_name": names,
            "artist_name": artists,
        }
    )
    return table, rng.integers(0, 50, size=n)


_WORDS_OF: dict[int, list[set[str]]] = {}


def brute_force(table: pa.Table, popularity: np.ndarray, query: str) -> list[int]:
    """Every track whose words hold each query word (the last as a prefix unless followed by a space)."""
    if id(table) not in _WORDS_OF:  # each track's words, one Python loop over a small catalog
        texts = [
            f"{t} {a}"
            for t, a in zip(
                table["track_name"].to_pylist(), table["artist_name"].to_pylist(), strict=True
            )
        ]
        _WORDS_OF[id(table)] = [{w for w in ws if w} for ws in words(pa.array(texts)).to_pylist()]
    wanted = query_words(query)
    last_is_prefix = not query[-1].isspace()
    out = []
    for i, have in enumerate(_WORDS_OF[id(table)]):
        full, last = (wanted[:-1], wanted[-1]) if last_is_prefix else (wanted, None)
        if all(w in have for w in full) and (last is None or any(h.startswith(last) for h in have)):
            out.append(i)
    return sorted(out, key=lambda i: (-popularity[i], i))


@pytest.fixture(scope="module")
def catalog():
    table, popularity = random_catalog()
    return table, popularity, Catalog(table, popularity)


@pytest.mark.parametrize(
    "query",
    [
        "lo",
        "love",
        "love ",
        "LOVE night",
        "night lov",
        "blues",
        "rio",
        "RÍO café",
        "dont",
        "don't",
        "x",
        "the",
        "blue x ",
        "  night  ",
    ],
)
def test_search_equals_brute_force(catalog, query):
    table, popularity, index = catalog
    expected = brute_force(table, popularity, query)
    result = index.search_index.search(query, 0, 10_000)
    assert result.total == len(expected)
    assert result.ids.tolist() == expected
    assert result.corrections == {}
    page = index.search_index.search(query, 5, 7)
    assert page.ids.tolist() == expected[5:12] and page.total == len(expected)


def test_fuzzy_corrections(catalog):
    table, popularity, index = catalog
    result = index.search_index.search("lonley nigth", 0, 10_000)
    # Each misspelt word stands for its close vocabulary words ("the lonelys" is an artist).
    assert result.corrections == {"lonley": ["lonely", "lonelys"], "nigth": ["night"]}
    either = set(brute_force(table, popularity, "lonely night ")) | set(
        brute_force(table, popularity, "lonelys night ")
    )
    assert result.ids.tolist() == sorted(either, key=lambda i: (-popularity[i], i))
    stop = index.search_index.search("don't stop", 0, 10)  # no word near "stop": nothing, said so
    assert stop.total == 0 and stop.corrections == {"stop": []}
    nothing = index.search_index.search("qqqqqq", 0, 10)
    assert nothing.total == 0 and nothing.corrections == {"qqqqqq": []}
    assert index.search_index.search("", 0, 10).total == 0


def test_folding():
    assert fold(pa.array(["Don't Stop Ünïcödé", None])).to_pylist() == ["dont stop unicode", ""]
    assert query_words("  Café—del  Mar! ") == ["cafe", "del", "mar"]


def test_lookup(catalog):
    table, _, index = catalog
    uris = table["track_uri"].to_pylist()
    assert index.lookup([uris[7], "spotify:track:nope", uris[0], uris[7]]).tolist() == [7, -1, 0, 7]
    assert index.lookup([]).tolist() == []
    assert index.rows([2])[0] == {
        "track_uri": uris[2],
        "track_name": table["track_name"][2].as_py(),
        "artist_name": table["artist_name"][2].as_py(),
    }


def test_lookup_survives_a_hash_collision():
    table = pa.table(
        {
            "track_uri": ["spotify:track:a", "spotify:track:b"],
            "track_name": ["A", "B"],
            "artist_name": ["X", "Y"],
        }
    )
    index = Catalog(table, np.array([1, 1]))
    hash_a = index._hashes[index._by_hash.tolist().index(0)]
    # Pretend both URIs hash to hash(a), with b first: a's lookup must skip b by comparing URIs.
    index._hashes = np.array([hash_a, hash_a])
    index._by_hash = np.array([1, 0])
    assert index.lookup(["spotify:track:a"]).tolist() == [0]
