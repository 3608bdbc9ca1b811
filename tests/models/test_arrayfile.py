"""A model's arrays.npz: a plain .npz, memory-mapped when read, checked against its digests."""

from __future__ import annotations

import numpy as np
import pytest

from segue.arrayfile import ArrayFileError, read_arrays, write_arrays

ARRAYS = {
    "ints": np.arange(10, dtype=np.int64),
    "floats": np.linspace(0, 1, 7, dtype=np.float32),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "empty": np.zeros((0, 5), dtype=np.float64),
    "scalar": np.array(3.5),
    "flags": np.array([True, False, True]),
    "bytes": np.frombuffer(b"booster text", dtype=np.uint8),
}


def test_arrays_round_trip_as_a_plain_npz(tmp_path):
    path = tmp_path / "arrays.npz"
    digests = write_arrays(path, ARRAYS)
    assert set(digests) == set(ARRAYS) and all(len(d) == 16 for d in digests.values())
    back = read_arrays(path, digests)
    for name, array in ARRAYS.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape, name
        np.testing.assert_array_equal(back[name], array)
    assert back["fortran"].flags.f_contiguous
    with np.load(path) as npz:  # any numpy reads it, without segue
        np.testing.assert_array_equal(npz["fortran"], ARRAYS["fortran"])
    assert read_arrays(path, None)["ints"].tolist() == list(range(10))  # the np.load path


def test_read_arrays_are_mapped_copy_on_write(tmp_path):
    path = tmp_path / "arrays.npz"
    digests = write_arrays(path, ARRAYS)
    back = read_arrays(path, digests)
    assert not back["ints"].flags.owndata  # a view of the mapped file, not a copy
    back["ints"][0] = 99  # a model may update an array in place: privately
    assert read_arrays(path, digests)["ints"][0] == 0


def test_a_changed_swapped_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "arrays.npz"
    digests = write_arrays(path, ARRAYS)
    data = bytearray(path.read_bytes())
    where = data.index(np.arange(10, dtype=np.int64).tobytes())
    data[where] ^= 1  # one bit of 'ints'
    path.write_bytes(bytes(data))
    with pytest.raises(ArrayFileError, match="array 'ints' does not match its digest"):
        read_arrays(path, digests)

    write_arrays(path, {**ARRAYS, "extra": np.ones(2)})
    with pytest.raises(ArrayFileError, match=r"holds arrays .*'extra'.* its params.json lists"):
        read_arrays(path, digests)

    np.savez_compressed(path, **ARRAYS)
    with pytest.raises(ArrayFileError, match=r"compressed or not an \.npy array"):
        read_arrays(path, digests)

    np.savez(path, ints=np.array([{"a": 1}], dtype=object))  # would need unpickling
    with pytest.raises(ArrayFileError, match="holds Python objects; segue never unpickles"):
        read_arrays(path, {"ints": write_digest_of(path)})


def write_digest_of(path) -> str:
    """The digest of the one member of ``path`` (as :func:`write_arrays` computes it)."""
    import mmap

    from segue.arrayfile import _digest, _members

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        ((_, (start, stop)),) = _members(handle, data)
        return _digest(data, start, stop)
