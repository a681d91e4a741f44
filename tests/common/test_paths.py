"""common.paths: a file name from a data file stays inside its folder, by name and by real path."""

from __future__ import annotations

import os

import pytest

from common.errors import InputError
from common.paths import PathOutsideRoot, check_relative, contained_path, printable_path


@pytest.fixture
def dataset(tmp_path):
    """root/images/{a.jpg, sub/b.jpg} and, outside root, secret.jpg and a folder elsewhere/."""
    images = tmp_path / "root" / "images"
    (images / "sub").mkdir(parents=True)
    (images / "a.jpg").write_bytes(b"a")
    (images / "sub" / "b.jpg").write_bytes(b"b")
    (tmp_path / "secret.jpg").write_bytes(b"s")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.jpg").write_bytes(b"c")
    return images


@pytest.mark.parametrize("name", ["a.jpg", "sub/b.jpg", "./a.jpg", "sub//b.jpg", "missing.jpg"])
def test_names_inside_the_folder_are_joined_to_it(dataset, name):
    assert contained_path(dataset, name) == dataset / name


@pytest.mark.parametrize(
    "name, why",
    [
        ("../secret.jpg", "has a '..' part"),
        ("sub/../../../secret.jpg", "has a '..' part"),
        ("sub/../a.jpg", "has a '..' part"),  # inside after all, but a name with '..' is refused whatever it reaches
        ("/etc/passwd", "is absolute"),
        ("", "an empty file name"),
        ("a.jpg\0.png", "holds a NUL byte"),
    ],
)
def test_names_that_leave_the_folder_by_their_text_are_refused_in_one_line(dataset, name, why):
    with pytest.raises(PathOutsideRoot, match=why) as caught:
        contained_path(dataset, name)
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)


def test_a_symlinked_file_or_folder_that_leaves_the_root_is_refused(dataset, tmp_path):
    (dataset / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (dataset / "linked").symlink_to(tmp_path / "elsewhere")
    for name in ("link.jpg", "linked/c.jpg", "linked/missing.jpg"):
        with pytest.raises(PathOutsideRoot, match="resolves outside"):
            contained_path(dataset, name)


def test_a_symlink_that_stays_inside_and_a_symlinked_root_are_accepted(dataset, tmp_path):
    (dataset / "alias.jpg").symlink_to(dataset / "sub" / "b.jpg")
    assert contained_path(dataset, "alias.jpg") == dataset / "alias.jpg"
    (tmp_path / "root_link").symlink_to(dataset)  # the user's own choice of folder may be a link
    assert contained_path(tmp_path / "root_link", "sub/b.jpg").read_bytes() == b"b"


def test_a_symlink_loop_is_refused_or_stays_inside_without_hanging(dataset):
    os.symlink("loop_b", dataset / "loop_a")
    os.symlink("loop_a", dataset / "loop_b")
    assert contained_path(dataset, "loop_a") == dataset / "loop_a"  # it names nothing outside; opening it fails


def test_the_refusal_quotes_a_long_or_multi_line_name_on_one_line():
    with pytest.raises(PathOutsideRoot) as caught:
        check_relative("../" + "x\n" * 100)
    assert "\n" not in str(caught.value) and "..." in str(caught.value)


@pytest.mark.parametrize(
    "name, shown",
    [
        ("Part1/1/1.jpg", "Part1/1/1.jpg"),
        ("caf\u00e9 \u4e2d.jpg", "caf\u00e9 \u4e2d.jpg"),  # printable Unicode stays as it is
        ("a.jpg\n== fake.jpg", "a.jpg\\n== fake.jpg"),
        ("a\\nb.jpg", "a\\\\nb.jpg"),  # a real backslash cannot pass for an escape
        ("\x1b[2J.jpg", "\\x1b[2J.jpg"),
        ("evil\u202egpj.exe", "evil\\u202egpj.exe"),  # a bidi override would show the name reversed
        (os.fsdecode(b"caf\xff.jpg"), "caf\\xff.jpg"),  # a byte that is not UTF-8: the byte
    ],
)
def test_printable_path_shows_any_name_on_one_unambiguous_line(name, shown):
    assert printable_path(name) == shown
    assert printable_path(name).isprintable() and printable_path(name).encode("utf-8")  # a surrogate would raise
