"""Delimiter sniffing and the genres table, on small files with known answers."""

from __future__ import annotations

import pytest

from segue.data.delimited import parse_delimiter, read_small_table, sniff_delimiter
from segue.data.item_genres import item_genres
from segue.errors import InputFileError, SegueError


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("plays.tsv", "user\titem\tplays\nu1\tx\t3\nu2\ty\t1\n", "\t"),
        # hetrec2011's layout: tab-separated .dat, names with commas and quotes
        (
            "artists.dat",
            'id\tname\turl\n1\tCrosby, Stills & Nash\thttp://a\n2\t"Weird Al"\thttp://b\n',
            "\t",
        ),
        ("plays.csv", "user;item;plays\nu1;x;3\nu2;y,z;1\n", ";"),
        ("plays.csv", "user|item|plays\nu1|x|3\nu2|y;z|1\n", "|"),
        ("plays.csv", 'user,item,plays\nu1,"a; b",3\nu2,"c|d",1\n', ","),
        ("plays.csv", "user,item\tname,plays\nu1,x\ty,3\n", ","),  # a tab in a comma file's field
        ("one.csv", "item\nx\ny\n", ","),
        ("one.tsv", "item\nx\ny\n", "\t"),
    ],
)
def test_sniff_delimiter(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert sniff_delimiter(path) == expected


def test_parse_delimiter():
    assert [parse_delimiter(t) for t in ("tab", "\\t", "\t", "comma", ";", "PIPE")] == [
        "\t",
        "\t",
        "\t",
        ",",
        ";",
        "|",
    ]
    with pytest.raises(SegueError, match="--delimiter must be one character"):
        parse_delimiter("::")


def test_read_small_table_names_file_columns_and_delimiter(tmp_path):
    path = tmp_path / "tags.dat"
    path.write_text("tagID\ttagValue\n1\trock\n2\t jazz \n")
    frame = read_small_table(path, ["tagValue", "tagID"])
    assert frame.to_dict(as_series=False) == {"tagValue": ["rock", "jazz"], "tagID": ["1", "2"]}
    with pytest.raises(
        InputFileError,
        match=r"tags\.dat: has no column 'tag' \(columns: tagID, tagValue\); "
        r"read as tab-separated",
    ):
        read_small_table(path, ["tag"])
    with pytest.raises(
        InputFileError,
        match=r"has no columns 'tagID', 'tagValue' \(columns: tagID\ttagValue\); "
        r"read as comma-separated",
    ):
        read_small_table(path, ["tagID", "tagValue"], delimiter=",")
    with pytest.raises(InputFileError, match=r"missing\.dat: no such file"):
        read_small_table(tmp_path / "missing.dat", ["tagID"])


def write_tags(tmp_path):
    """Artists 10, 11, 12 (and 99, never played). Applications: 10 → rock ×3, jazz ×1, pop ×2;
    11 → jazz ×2, rock ×1; 12 → typo ×1 (a tag applied once overall); 99 → jazz ×1."""
    rows = (
        [(10, 1)] * 3
        + [(10, 2)]
        + [(10, 3)] * 2
        + [(11, 2)] * 2
        + [(11, 1)]
        + [(12, 4)]
        + [(99, 2)]
    )
    (tmp_path / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\n"
        + "".join(f"{u}\t{a}\t{t}\t1\n" for u, (a, t) in enumerate(rows))
    )
    (tmp_path / "tags.dat").write_text("tagID\ttagValue\n1\trock\n2\tjazz\n3\tpop\n4\troc\n")


def test_item_genres_keep_each_items_most_applied_genres(tmp_path):
    write_tags(tmp_path)
    found = item_genres(
        tmp_path / "user_taggedartists.dat",
        item_col="artistID",
        genre_col="tagID",
        names=tmp_path / "tags.dat",
        top=2,
        min_count=2,
    )
    # overall: rock 4, jazz 4, pop 2, roc 1 (dropped); ids by applications, ties by name
    assert found.names == ["jazz", "rock", "pop"]
    pairs = {(k, found.names[g]) for k, g in found.pairs.iter_rows()}
    # 10: rock 3 > pop 2 > jazz 1 → top 2 rock, pop; 11: jazz, rock; 12: nothing common; 99 kept (ingest drops it)
    assert pairs == {("10", "rock"), ("10", "pop"), ("11", "jazz"), ("11", "rock"), ("99", "jazz")}
    top1 = item_genres(
        tmp_path / "user_taggedartists.dat",
        item_col="artistID",
        genre_col="tagID",
        names=tmp_path / "tags.dat",
        top=1,
        min_count=3,
    )
    assert {(k, top1.names[g]) for k, g in top1.pairs.iter_rows()} == {
        ("10", "rock"),
        ("11", "jazz"),
        ("99", "jazz"),
    }


def test_item_genres_errors(tmp_path):
    write_tags(tmp_path)
    tagged = tmp_path / "user_taggedartists.dat"
    with pytest.raises(InputFileError, match=r"user_taggedartists\.dat: has no column 'genre'"):
        item_genres(tagged, item_col="artistID", genre_col="genre")
    with pytest.raises(InputFileError, match=r"no genre is applied 50 times or more"):
        item_genres(tagged, item_col="artistID", genre_col="tagID", min_count=50)
    (tmp_path / "other.dat").write_text("id\tname\n100\tx\n")
    with pytest.raises(InputFileError, match=r"other\.dat: names none of the genre ids"):
        item_genres(tagged, item_col="artistID", genre_col="tagID", names=tmp_path / "other.dat")
    with pytest.raises(InputFileError, match=r"nope\.dat: no such file"):
        item_genres(tmp_path / "nope.dat", item_col="artistID", genre_col="tagID")
