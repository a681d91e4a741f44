import pytest

from plip.config import PLIPConfig, TextConfig, VisionConfig


def test_from_dict_builds_sections_and_names_an_unknown_key():
    config = PLIPConfig.from_dict({"vision": {"output_dim": 512}, "tic": {"weight": 0}})
    assert config.vision.output_dim == 512 and config.vision.width == 64 and config.tic.weight == 0
    assert PLIPConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"config.vision: unknown key\(s\) \['depth'\]"):
        PLIPConfig.from_dict({"vision": {"depth": 3}})


def test_sections_check_their_values():
    with pytest.raises(ValueError, match="multiples of 32"):
        VisionConfig(image_size=(250, 128))
    with pytest.raises(ValueError, match="text.pooling must be one of"):
        TextConfig(pooling="max")
    with pytest.raises(ValueError, match="needs text.bert"):
        TextConfig(pretrained=False)
