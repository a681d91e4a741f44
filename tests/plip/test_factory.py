import pytest

from plip.factory import get_config, list_models, merge_overrides


def test_presets_and_overrides() -> None:
    assert {"RN50", "RN50-MiniLM", "RN-tiny"} <= set(list_models())
    rn50 = get_config("RN50")
    assert rn50.vision.layers == (3, 4, 6, 3) and rn50.text.pooling == "pooler" and rn50.text.max_length == 64
    assert (rn50.ivlc_weight, rn50.tic.weight, rn50.iap.weight) == (1.0, 0.02, 0.1)
    assert get_config("RN-tiny").text.pooling == "mean"
    tweaked = get_config("RN50", vision={"output_dim": 512}, tic={"weight": 0})
    assert tweaked.vision.output_dim == 512 and tweaked.vision.width == 64 and tweaked.tic.weight == 0
    with pytest.raises(ValueError, match="unknown PLIP model 'RN51'"):
        get_config("RN51")
    with pytest.raises(ValueError, match=r"config.vision: unknown key\(s\) \['depth'\]"):
        get_config("RN50", vision={"depth": 3})
    with pytest.raises(ValueError, match="multiples of 32"):
        get_config("RN50", vision={"image_size": [250, 128]})


def test_overrides_merge_nested_dicts_and_replace_everything_else() -> None:
    base = {"vision": {"width": 64, "heads": 8}, "ivlc_weight": 1.0, "text": {"bert": {"a": 1}}}
    merged = merge_overrides(base, {"vision": {"width": 8}, "ivlc_weight": 0.0, "text": {"bert": None}})
    assert merged == {"vision": {"width": 8, "heads": 8}, "ivlc_weight": 0.0, "text": {"bert": None}}
    assert base["vision"]["width"] == 64  # the base is left as it was
