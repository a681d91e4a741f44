import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from common.errors import InputError
from common.weights_header import TensorInfo, WeightsHeaderError, parameter_count, read_header


def _raw(path, header: dict, data_bytes: int) -> None:
    encoded = json.dumps(header).encode()
    with open(path, "wb") as stream:
        stream.write(struct.pack("<Q", len(encoded)) + encoded)
        stream.truncate(8 + len(encoded) + data_bytes)  # a sparse hole: the data is never read


def test_shapes_dtypes_and_count_come_from_the_header_alone(tmp_path):
    save_file(
        {"a": torch.zeros(2, 3), "b": torch.zeros(4, dtype=torch.int64)},
        str(tmp_path / "w.safetensors"),
        metadata={"format": "pt"},
    )
    header = read_header(tmp_path / "w.safetensors")
    assert header == {"a": TensorInfo("F32", (2, 3)), "b": TensorInfo("I64", (4,))}
    assert parameter_count(header) == 10
    # 4 GB of declared float32 data, never read: only the header's few bytes are.
    _raw(tmp_path / "big.safetensors", {"w": {"dtype": "F32", "shape": [2**30], "data_offsets": [0, 2**32]}}, 2**32)
    assert parameter_count(read_header(tmp_path / "big.safetensors")) == 2**30


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "header too small"),
        (struct.pack("<Q", 2**40) + b"{}", "a header of 1099511627776 bytes"),
        (struct.pack("<Q", 3) + b"{x}", "its header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "its header is not a JSON object"),
    ],
)
def test_a_damaged_file_is_one_line_naming_it(tmp_path, content, reason):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsHeaderError) as error:
        read_header(path)
    assert isinstance(error.value, InputError) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"{path}: not a readable safetensors file (") and reason in str(error.value)


@pytest.mark.parametrize(
    "entry, reason",
    [
        ({"dtype": 3, "shape": [1], "data_offsets": [0, 4]}, "has no dtype"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "has no valid shape"),
        ({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 4]}, "has no valid shape"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "does not lie inside the file"),  # 8 bytes needed
        ({"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}, "does not lie inside the file"),  # past the end
        ({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}, "does not lie inside the file"),
    ],
)
def test_a_lying_tensor_entry_is_refused(tmp_path, entry, reason):
    _raw(tmp_path / "w.safetensors", {"w": entry}, 16)
    with pytest.raises(WeightsHeaderError, match=f"tensor 'w' {reason}"):
        read_header(tmp_path / "w.safetensors")
