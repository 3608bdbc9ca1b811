"""Hand-made MPD slices for tests of the reader (small, exact, each field under control)."""

from __future__ import annotations

import json
from pathlib import Path


def uri(kind: str, i: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    body = "".join(digits[(i * 7919 + k * 31) % 62] for k in range(22))
    return f"spotify:{kind}:{body}"


def track(i: int, pos: int | None = None, *, reduced: bool = False) -> dict:
    if reduced:  # the partial schema that circulates: no pos, no URIs but the track's
        return {
            "track_uri": uri("track", i),
            "track_name": f"Song {i}",
            "artist_name": f"Artist {i % 3}",
        }
    return {
        "pos": pos,
        "artist_name": f"Artist {i % 3}",
        "track_uri": uri("track", i),
        "artist_uri": uri("artist", i % 3),
        "track_name": f"Song {i}",
        "album_uri": uri("album", i % 4),
        "duration_ms": 200_000 + i,
        "album_name": f"Album {i % 4}",
    }


def playlist(pid: int, track_ids: list[int], *, name: str = "chill", reduced: bool = False) -> dict:
    tracks = [track(t, k, reduced=reduced) for k, t in enumerate(track_ids)]
    if reduced:
        return {"pid": pid, "name": name, "tracks": tracks}
    return {
        "name": name,
        "collaborative": "false",
        "pid": pid,
        "modified_at": 1500000000 + pid,
        "num_tracks": len(tracks),
        "num_albums": len({t % 4 for t in track_ids}),
        "num_followers": 1,
        "num_edits": 2,
        "duration_ms": sum(200_000 + t for t in track_ids),
        "num_artists": len({t % 3 for t in track_ids}),
        "tracks": tracks,
    }


def write_slice(
    directory: Path, start: int, end: int, playlists: list[dict], *, indent: int | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"mpd.slice.{start}-{end}.json"
    path.write_text(
        json.dumps({"info": {"slice": f"{start}-{end}"}, "playlists": playlists}, indent=indent)
    )
    return path


def two_slices(directory: Path, *, indent: int | None = None) -> Path:
    """pids 0-1 and 2-3 with overlapping tracks; returns the directory."""
    write_slice(
        directory,
        0,
        1,
        [playlist(0, [1, 2, 3, 4, 5]), playlist(1, [3, 4, 5, 6, 7, 8])],
        indent=indent,
    )
    write_slice(
        directory,
        2,
        3,
        [playlist(2, [9, 1, 2, 10, 11], name="Work Out"), playlist(3, [5, 6, 7, 12, 13, 1])],
        indent=indent,
    )
    return directory
