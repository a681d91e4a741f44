"""MATLAB files through scipy: strings, label matrices and 1-based indices whatever squeezing did, clear errors."""

import numpy as np
import pytest
import scipy.io

from spac.predictor.datasets.matfiles import field, indices, load_mat, matrix, strings


def test_cell_arrays_of_strings_come_back_flat_whatever_their_shape(tmp_path):
    path = tmp_path / "a.mat"
    scipy.io.savemat(
        path,
        {
            "column": np.array([["a"], ["bb"]], dtype=object),
            "one": np.array([["x"]], dtype=object),
            "row": np.array([["p", "q"]], dtype=object),
            "s": {"names": np.array(["u", "v"], dtype=object)},
        },
    )
    data = load_mat(path)
    assert strings(data["column"], "c") == ["a", "bb"] and strings(data["one"], "o") == ["x"]
    assert strings(data["row"], "r") == ["p", "q"] and strings(field(data["s"], "names", "s"), "n") == ["u", "v"]
    with pytest.raises(ValueError, match="n: expected text"):
        strings(np.array([1, 2]), "n")
    with pytest.raises(ValueError, match="s: no field 'name' .it has names"):
        field(data["s"], "name", "s")


def test_label_matrices_keep_their_shape_and_must_be_whole_numbers():
    assert matrix(np.array([1, 0, 1]), 1, 3, "m").tolist() == [[1, 0, 1]]  # one image, squeezed to a row
    assert matrix(np.array([1, 0, 1]), 3, 1, "m").tolist() == [[1], [0], [1]]  # one attribute
    assert matrix(np.array(1), 1, 1, "m").tolist() == [[1]]
    assert matrix(np.zeros((0, 0)), 0, 5, "m").shape == (0, 5)
    with pytest.raises(ValueError, match="m: expected 2 x 3 labels, got shape \\[3, 2\\]"):
        matrix(np.zeros((3, 2)), 2, 3, "m")
    with pytest.raises(ValueError, match="whole-number"):
        matrix(np.array([[0.5]]), 1, 1, "m")
    with pytest.raises(ValueError, match="numeric matrix"):
        matrix(np.array([["a"]]), 1, 1, "m")


def test_indices_are_made_0_based_and_checked():
    assert indices(np.array([[1, 3]]), 3, "i").tolist() == [0, 2]
    assert indices(np.array(2), 3, "i").tolist() == [1]
    with pytest.raises(ValueError, match="i: index 4 outside 1..3"):
        indices(np.array([1, 4]), 3, "i")
    with pytest.raises(ValueError, match="index 0 outside"):
        indices(np.array([0]), 3, "i")


def test_unreadable_files_are_one_line_errors(tmp_path):
    (tmp_path / "bad.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="bad.mat: not a readable MATLAB file"):
        load_mat(tmp_path / "bad.mat")
    with pytest.raises(ValueError, match="missing.mat: no such file"):
        load_mat(tmp_path / "missing.mat")


def test_a_short_text_file_is_a_one_line_error_not_an_index_error(tmp_path):
    (tmp_path / "annotation.mat").write_bytes(b"this is a text file..\n\n"[:23])
    with pytest.raises(ValueError, match=r"annotation.mat: not a readable MATLAB file \(index out of range\)$"):
        load_mat(tmp_path / "annotation.mat")


def test_a_crash_of_the_reader_is_a_one_line_error(tmp_path, monkeypatch):
    """scipy's reader crashed with SIGSEGV on some byte-flipped files; the child process takes the crash."""
    import os
    import signal

    scipy.io.savemat(tmp_path / "a.mat", {"a": np.arange(3)})
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(ValueError, match=r"a.mat: not a readable MATLAB file \(the MATLAB reader crashed on it\)$"):
        load_mat(tmp_path / "a.mat")


def test_a_fractional_index_is_refused():
    with pytest.raises(ValueError, match=r"^i: index 1.7 is not a whole number$"):
        indices(np.array([1.0, 1.7]), 3, "i")
    assert indices(np.array([[1.0, 3.0]]), 3, "i").tolist() == [0, 2]
