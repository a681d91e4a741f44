"""The one device resolver: names checked for syntax, then against this machine."""

import pytest
import torch

from common.devices import check_device_name, resolve_device


def test_cpu_and_auto_resolve_to_torch_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" cpu ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "mps", ""])
def test_malformed_names_are_one_line_errors(name):
    with pytest.raises(ValueError, match=r"^invalid device .* \(use cpu, cuda, cuda:N or auto\)$"):
        resolve_device(name)
    with pytest.raises(ValueError, match="invalid device"):
        check_device_name(name)


def test_a_cuda_device_this_machine_lacks_is_refused():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            resolve_device("cuda")
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match="requested but"):
        resolve_device(f"cuda:{count}")


def test_check_device_name_checks_only_the_syntax():
    assert [check_device_name(n) for n in ("cpu", "cuda", "cuda:7", " auto")] == ["cpu", "cuda", "cuda:7", "auto"]
