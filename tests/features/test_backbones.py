import numpy as np
import pytest

from vidcls.errors import VidclsError
from vidcls.features import BACKBONES, get_backbone


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(VidclsError, match=r"Unknown backbone 'resnet51'; choose one of: .*vgg19.*resnet50"):
        get_backbone("resnet51", weights="none")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_backbone_embeds_frames_to_its_feature_dim(name):
    backbone = get_backbone(name, weights="none", image_size=32, batch_size=4)
    features = backbone.embed(np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    assert features.shape == (5, BACKBONES[name].feature_dim)  # 5 frames: one padded batch
    assert np.isfinite(features).all()


def test_vgg19_features_are_fc2_4096():
    assert BACKBONES["vgg19"].feature_dim == 4096 and BACKBONES["vgg19"].output_layer == "fc2"


def test_same_seed_rebuilds_the_same_weights():
    first = get_backbone("resnet50", weights="none", image_size=32, seed=5)
    assert first.weights_checksum() == get_backbone("resnet50", weights="none", image_size=32, seed=5).weights_checksum()
    assert first.weights_checksum() != get_backbone("resnet50", weights="none", image_size=32, seed=6).weights_checksum()


def test_weights_file_loads_and_is_fingerprinted(tmp_path):
    source = get_backbone("mobilenet_v2", weights="none", image_size=32, seed=3)
    path = tmp_path / "mobilenet_v2.weights.h5"
    source.save_weights(str(path))
    loaded = get_backbone("mobilenet_v2", weights=str(path), image_size=32, seed=99)
    assert loaded.weights_checksum() == source.weights_checksum()
    assert loaded.fingerprint()["weights"].startswith("file:")


def test_missing_or_wrong_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(VidclsError, match="Weights file .*nope.h5 does not exist"):
        get_backbone("resnet50", weights=str(tmp_path / "nope.h5"))
    other = tmp_path / "mobilenet.weights.h5"
    get_backbone("mobilenet_v2", weights="none", image_size=32).save_weights(str(other))
    with pytest.raises(VidclsError, match="Could not load weights file .*mobilenet.weights.h5 into resnet50"):
        get_backbone("resnet50", weights=str(other), image_size=32)


def test_too_small_image_size_is_rejected():
    with pytest.raises(VidclsError, match="Expected --image-size >= 32 for backbone resnet50; received 16"):
        get_backbone("resnet50", weights="none", image_size=16)


def test_imagenet_weights_offline_say_how_to_provide_a_file(tmp_path, monkeypatch):
    """The real download path, made to fail at once: a proxy on a closed loopback port."""
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached weights from ~/.keras either
    with pytest.raises(VidclsError, match=r"Could not load ImageNet weights for mobilenet_v2: .*download failed.*--weights mobilenet_v2.weights.h5"):
        get_backbone("mobilenet_v2", weights="imagenet", image_size=224)


def test_embedding_applies_the_backbones_preprocessing():
    """embed(frames) is the network on the backbone's own preprocessing of the frames, not
    on raw 0-255 values (ResNet50: BGR, ImageNet means subtracted)."""
    import numpy as np

    backbone = get_backbone("resnet50", "none", image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    embedded = np.asarray(backbone.embed(frames))
    preprocessed = np.asarray(backbone.model(backbone.preprocess(frames.astype(np.float32)), training=False))
    raw = np.asarray(backbone.model(frames.astype(np.float32), training=False))
    np.testing.assert_allclose(embedded, preprocessed, rtol=1e-3, atol=1e-4)
    assert np.abs(embedded - raw).max() > 1e-2
