"""pipelines.shared.file_names: one spelling per listed file name, never one that leaves its folder."""

from __future__ import annotations

import pytest

from common.paths import PathOutsideRoot
from pipelines.shared.file_names import one_spelling


@pytest.mark.parametrize(
    "name", ["Part1/1/1.jpg", "Part1/./1/1.jpg", "Part1//1/1.jpg", "./Part1/1/1.jpg", "Part1/x/../1/1.jpg"]
)
def test_every_spelling_of_a_file_is_one_name(name):
    assert one_spelling(name) == "Part1/1/1.jpg"


@pytest.mark.parametrize("name", ["..", "../a.jpg", "a/../../b.jpg", "/etc/passwd"])
def test_a_name_that_leaves_its_folder_is_refused(name):
    with pytest.raises(PathOutsideRoot, match="leaves its folder"):
        one_spelling(name)
