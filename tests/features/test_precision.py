"""The backbone's number format (`extract --precision`) and batch normalisation folding."""

import json

import keras
import numpy as np
import pytest

from vidcls.config import FeatureConfig
from vidcls.errors import VidclsError
from vidcls.features import BACKBONES, FeatureCache, extract, get_backbone
from vidcls.features.precision import cpu_bf16_flags, resolve_precision


def _frames(count=6, size=32):
    return np.random.default_rng(0).integers(0, 255, (count, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16"])
def test_folded_networks_compute_what_the_loaded_ones_do(name):
    backbone = get_backbone(name, weights="none", image_size=32, batch_size=8)
    frames = _frames()
    loaded = np.asarray(backbone._source(backbone.preprocess(frames.astype(np.float32)), training=False))
    folded = backbone.embed(frames)
    np.testing.assert_allclose(folded, loaded, rtol=1e-4, atol=1e-4 * np.abs(loaded).max())
    normalisations = [layer for layer in backbone.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if name != "vgg16":  # every normalisation after a convolution is gone
        assert not normalisations and any(isinstance(layer, keras.layers.BatchNormalization) for layer in backbone._source.layers)


def test_bfloat16_features_are_the_float32_ones_to_its_precision():
    float32 = get_backbone("resnet50", weights="none", image_size=64, batch_size=8)
    bfloat16 = get_backbone("resnet50", weights="none", image_size=64, batch_size=8, precision="bfloat16")
    assert bfloat16.weights_checksum() == float32.weights_checksum()  # the same weights, computed in another format
    assert "precision" not in float32.fingerprint() and bfloat16.fingerprint()["precision"] == "bfloat16"
    assert any(layer.compute_dtype == "bfloat16" for layer in bfloat16.model.layers)
    reference, features = float32.embed(_frames(size=64)), bfloat16.embed(_frames(size=64))
    cosine = (reference * features).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(features, axis=1)
    assert cosine.min() > 0.999 and features.dtype == np.float32
    assert np.abs(features - reference).max() > 0  # really computed in bfloat16
    assert bfloat16.as_float32().precision == "float32" and float32.as_float32() is float32


def test_auto_picks_the_fast_format_of_this_machine_and_unknown_formats_are_refused():
    chosen = resolve_precision("auto")
    assert chosen.name == ("bfloat16" if cpu_bf16_flags() else "float32")  # no GPU here
    assert resolve_precision("float32").name == "float32"
    assert "CPUs have no fast float16 convolutions" in resolve_precision("float16").reason
    with pytest.raises(VidclsError, match=r"Expected --precision \(extract.precision\) to be one of auto, float32, bfloat16, float16; received 'int8'"):
        resolve_precision("int8")
    with pytest.raises(VidclsError, match="Expected a backbone precision of float32, bfloat16, float16; received 'auto'"):
        get_backbone("resnet50", weights="none", image_size=32, precision="auto")


def test_a_bfloat16_cache_records_its_format_and_predict_embeds_in_it(video_dir, tmp_path):
    from vidcls.features import encoder_from_fingerprint, read_sampled_frames

    cache_dir = tmp_path / "cache"
    settings = dict(data_dir=str(video_dir), cache_dir=str(cache_dir), backbone="resnet50", weights="none",
                    num_frames=4, image_size=32, streams=["appearance"])
    summary = extract(FeatureConfig(**settings, precision="bfloat16"))
    assert summary.precision == "bfloat16" and "backbone in bfloat16" in summary.describe()
    cache = FeatureCache(cache_dir)
    assert cache.info["precision"] == "bfloat16"
    encoder = encoder_from_fingerprint(cache.info)  # what predict, serve and export rebuild
    assert encoder.backbone.precision == "bfloat16"
    entry = cache.entries[0]
    clip = read_sampled_frames(entry["video"], 4, 32)
    np.testing.assert_array_equal(encoder.encode([clip])[0], cache.load_features(entry))

    # auto continues a cache in its own format: a float32 cache (or one from before --precision) stays float32.
    old = tmp_path / "old"
    extract(FeatureConfig(**{**settings, "cache_dir": str(old)}, precision="float32"))
    info = json.loads((old / "cache.json").read_text())
    assert "precision" not in info
    (old / "manifest.jsonl").write_text("".join(line + "\n" for line in (old / "manifest.jsonl").read_text().splitlines()[:5]))
    resumed = extract(FeatureConfig(**{**settings, "cache_dir": str(old)}, precision="auto"))
    assert resumed.precision == "float32" and resumed.extracted == len(FeatureCache(old).entries) - 5
    # Asked for explicitly, another format is refused as any other changed setting is.
    with pytest.raises(VidclsError, match="precision: cache has None, this run wants 'bfloat16'"):
        extract(FeatureConfig(**{**settings, "cache_dir": str(old)}, precision="bfloat16"))


def test_every_registered_backbone_folds(tmp_path):
    for name in BACKBONES:
        if name in ("vgg16", "resnet50", "mobilenet_v2", "efficientnet_b0"):
            continue  # compared with the loaded network above
        backbone = get_backbone(name, weights="none", image_size=32, batch_size=4, precision="bfloat16")
        assert np.isfinite(backbone.embed(_frames(2))).all(), name
