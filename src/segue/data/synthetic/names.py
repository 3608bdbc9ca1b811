"""Readable names and Spotify-style URIs, derived deterministically from integer keys.

Everything here is a pure function of (seed, entity kind, index): a track's name and URI do not
depend on which playlists happened to use it or in which process it was rendered. Hashing is
splitmix64 over ``uint64`` arrays, so names for a million entities cost a few numpy passes.
"""

from __future__ import annotations

import numpy as np

BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)

_ADJECTIVES = (
    "Golden Broken Electric Midnight Silver Wild Lonely Sweet Neon Velvet Crystal Burning Quiet "
    "Endless Restless Paper Hollow Lucky Purple Faded Shining Sacred Secret Frozen Little Heavy "
    "Dirty Simple Perfect Crazy Sleepy Dancing Falling Rising Runaway Summer Winter Northern "
    "Southern Open Empty Blue Red Green Black White Dark Bright Lost Young Old New Last First "
    "Hidden Higher Deeper Slow Fast Loud Soft Cold Warm Gentle Savage Holy Bitter Honey Cosmic"
).split()
_NOUNS = (
    "Heart Night Road River Fire Rain Sky Ocean Dream Light Shadow Mountain City Highway Garden "
    "Window Mirror Letter Promise Memory Secret Thunder Lightning Diamond Ghost Angel Devil Stranger "
    "Lover Friend Child Queen King Kingdom Island Desert Forest Ocean Season Morning Evening "
    "Sunset Sunrise Echo Signal Radio Engine Machine Paradise Heaven Home Town Street Avenue Bridge "
    "Circle Crown Wave Tide Storm Star Moon Sun Planet Rocket Horizon Satellite Feather Stone "
    "Flower Rose Whiskey Wine Honey Cherry Velvet Kiss Smile Tears Bones Blood Soul Mind Body Time"
).split()
_VERBS = (
    "Running Falling Dancing Waiting Dreaming Burning Holding Chasing Breaking Calling Singing "
    "Driving Flying Fading Shining Leaving Coming Hiding Losing Finding Wanting Loving Missing"
).split()
_FIRST = (
    "Jack Lily Max Ruby Sam Nora Leo Mia Eli Zoe Cole Ivy Jake Ava Luke Emma Owen Ella Ryan Grace "
    "Noah Chloe Liam Sofia Dylan Hazel Kai Luna Miles Stella Jay Rosa Dean Iris Carter Jade Blake "
    "Tessa Marcus Nina Andre Kira Felix Maya Omar Lena Hugo Ada Vince Dora Rex Cleo Reid June"
).split()
_LAST = (
    "Carter Hayes Brooks Rivers Stone Wells Hart Knight Fox Reed Lane Banks Cross Gray Steele Page "
    "Vance Monroe Blake Hale Quinn Rhodes Pierce Ford Walsh Mercer Harlow Sloane Cruz Vega Diaz "
    "Kane Nash Wilde Frost Bishop Sterling Lowe Marsh Young King Rowe Dale Shaw Ward Price Cole"
).split()
_BAND_NOUNS = (
    "Wolves Kids Lights Lions Ghosts Strangers Saints Riders Hearts Giants Foxes Rebels Sparrows "
    "Pilots Dreamers Shadows Echoes Kings Brothers Sisters Machines Tigers Ravens Comets Horses"
).split()

_TRACK_SUFFIX = ("", "", "", "", "", "", "", " - Remix", " - Acoustic", " - Live", " - Radio Edit")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a ``uint64`` array (a good, cheap integer hash)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def keyed_hash(seed: int, kind: int, index: np.ndarray) -> np.ndarray:
    """Hash of (seed, kind, index) as ``uint64``; ``index`` is any integer array."""
    with np.errstate(over="ignore"):
        base = splitmix64(np.array([seed * 1_000_003 + kind], dtype=np.uint64))[0]
        return splitmix64(index.astype(np.uint64) ^ base)


def spotify_uris(kind: str, seed: int, index: np.ndarray) -> list[str]:
    """``spotify:<kind>:`` + 22 base-62 characters for each index (deterministic, distinct).

    Two 64-bit hashes give 22 digits (11 each, since 62**11 < 2**64). The first hash is a bijection
    of the index (splitmix64 is invertible), so URIs of one kind never collide.
    """
    kind_code = {"track": 1, "artist": 2, "album": 3}[kind]
    h1 = keyed_hash(seed, kind_code, index)
    h2 = keyed_hash(seed, kind_code + 10, index)
    digits = np.empty((len(index), 22), dtype=np.uint8)
    for j, h in enumerate((h1, h2)):
        h = h.copy()
        for k in range(11):
            digits[:, j * 11 + k] = BASE62[(h % np.uint64(62)).astype(np.intp)]
            h //= np.uint64(62)
    prefix = f"spotify:{kind}:"
    return [prefix + s for s in digits.view("S22").ravel().astype(str)]


def _pick(words: tuple[str, ...] | list[str], h: np.ndarray, shift: int) -> np.ndarray:
    return np.asarray(words, dtype=object)[
        ((h >> np.uint64(shift)) % np.uint64(len(words))).astype(np.intp)
    ]


def artist_names(seed: int, index: np.ndarray) -> list[str]:
    """Person names ("Lily Hayes"), bands ("The Golden Wolves") and one-word acts."""
    h = keyed_hash(seed, 20, index)
    style = (h % np.uint64(10)).astype(np.intp)
    person = _pick(_FIRST, h, 8) + " " + _pick(_LAST, h, 20)
    band = "The " + _pick(_ADJECTIVES, h, 8) + " " + _pick(_BAND_NOUNS, h, 20)
    single = _pick(_ADJECTIVES, h, 32) + _pick(_NOUNS, h, 44).astype(str).astype(object)
    names = np.where(style < 5, person, np.where(style < 8, band, single))
    # A numeric tag keeps names readable while making most of them distinct across 500K artists.
    tag = (h >> np.uint64(52)) % np.uint64(7)
    roman = np.asarray(["", "", "", "", " II", " Jr.", " & Co."], dtype=object)
    return list(names + roman[tag.astype(np.intp)])


def album_names(seed: int, index: np.ndarray) -> list[str]:
    h = keyed_hash(seed, 30, index)
    style = (h % np.uint64(4)).astype(np.intp)
    two = _pick(_ADJECTIVES, h, 8) + " " + _pick(_NOUNS, h, 20)
    the = "The " + _pick(_NOUNS, h, 32)
    of = _pick(_NOUNS, h, 8) + " of " + _pick(_NOUNS, h, 44)
    return list(
        np.where(style == 0, two, np.where(style == 1, the, np.where(style == 2, of, two + "s")))
    )


def track_names(seed: int, index: np.ndarray) -> list[str]:
    h = keyed_hash(seed, 40, index)
    style = (h % np.uint64(5)).astype(np.intp)
    a = _pick(_ADJECTIVES, h, 8) + " " + _pick(_NOUNS, h, 20)
    b = (
        _pick(_VERBS, h, 8)
        + " "
        + _pick(
            (
                "Home",
                "Away",
                "Back",
                "Down",
                "Slow",
                "Tonight",
                "Forever",
                "Again",
                "Alone",
                "Free",
            ),
            h,
            20,
        )
    )
    c = _pick(_NOUNS, h, 8)
    d = _pick(("My", "Your", "Our", "This", "That"), h, 32) + " " + _pick(_NOUNS, h, 20)
    names = np.where(
        style == 0,
        a,
        np.where(style == 1, b, np.where(style == 2, c, np.where(style == 3, d, a + " " + c))),
    )
    suffix = np.asarray(_TRACK_SUFFIX, dtype=object)[
        ((h >> np.uint64(48)) % np.uint64(len(_TRACK_SUFFIX))).astype(np.intp)
    ]
    return list(names + suffix)
