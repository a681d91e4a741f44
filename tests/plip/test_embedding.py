import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from plip.checkpoint import CheckpointError, save_checkpoint, save_released
from plip.embedding import batched, load_embedder
from plip.factory import create_model
from plip.transforms import ImageReadError, eval_transform
from spac.render import render_dataset
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)

REPO = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The python block under "Embeddings in five lines" in README.md, exactly as a reader sees it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Embeddings in five lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("people")
    labels = render_dataset(root, identities=2, images_per_identity=2, seed=3)
    return [root / label["file_path"] for label in labels]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "tiny", tiny_model(seed=1, tic={"weight": 0}, iap={"weight": 0})
    )


def test_the_readme_example_runs_as_written(people, tiny_dir, tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) == 5  # ruff format adds a blank line
    paths = re.findall(r'"([^"]+\.jpg)"', code)
    checkpoint = re.search(r'load_embedder\("([^"]+)"', code).group(1)
    (tmp_path / checkpoint).parent.mkdir(parents=True)
    (tmp_path / checkpoint).symlink_to(tiny_dir)
    for source, name in zip(people, paths):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(source.read_bytes())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "tensor" in printed and len(re.findall(r"-?\d\.\d+", printed)) == len(paths)


def test_embeddings_are_normalised_batched_and_the_same_for_paths_and_images(people, tiny_dir):
    model = load_embedder(tiny_dir)
    assert model.dim == 32 and model.device == torch.device("cpu")
    by_path = model.embed_images(people, batch_size=3)
    by_image = model.embed_images([Image.open(p) for p in people], batch_size=1)
    assert by_path.shape == (4, 32) and by_path.dtype == torch.float32
    assert torch.allclose(by_path.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(by_path, by_image, atol=1e-5)
    texts = model.embed_texts(["a man in a blue shirt", "a woman with a red bag", "black shoes"], batch_size=2)
    assert texts.shape == (3, 32) and torch.allclose(texts.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(texts[2], model.embed_texts(["black shoes"])[0], atol=1e-5)
    assert model.embed_texts([]).shape == (0, 32) and model.embed_images([]).shape == (0, 32)


def test_released_file_and_our_directory_with_the_same_weights_embed_identically(people, tmp_path):
    torch.manual_seed(0)
    model = create_model("RN-tiny", tic={"weight": 0}, iap={"weight": 0})
    save_released(model, tmp_path / "PLIP_tiny.pth.tar")
    ours = load_embedder(save_checkpoint(tmp_path / "ours", model))
    released = load_embedder(tmp_path / "PLIP_tiny.pth.tar", preset="RN-tiny")
    texts = ["a woman in a red coat with a black bag", "a man in grey trousers"]
    assert torch.equal(ours.embed_images(people), released.embed_images(people))
    assert torch.equal(ours.embed_texts(texts), released.embed_texts(texts))
    # the released evaluation transform at 256x128
    assert torch.equal(ours.preprocess(people[0]), eval_transform(Image.open(people[0])))


def test_bad_input_is_a_one_line_value_error(tiny_dir, tmp_path):
    model = load_embedder(tiny_dir)
    with pytest.raises(ValueError, match="a list of texts, got a single string"):
        model.embed_texts("one string")
    with pytest.raises(ValueError, match="a list of images, got a single image"):
        model.embed_images("one.jpg")
    with pytest.raises(ValueError, match="expects strings, got int"):
        model.embed_texts(["fine", 3])
    with pytest.raises(ImageReadError, match=f"cannot read image {tmp_path / 'none.jpg'}"):
        model.embed_images([tmp_path / "none.jpg"])
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_embedder(tmp_path / "missing")
    with pytest.raises(ValueError, match="invalid device"):
        load_embedder(tiny_dir, device="tpu")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        list(batched([1, 2], 0))
