import dataclasses

import numpy as np
import pytest

from vidcls.config import AugmentConfig
from vidcls.data import (
    BatchSource,
    balanced_class_weights,
    explicit_class_weights,
    focal_alpha_from_frequencies,
    make_dataset,
)
from vidcls.data.augment import augment_batch
from vidcls.errors import VidclsError


def _data(count=10, frames=4, dim=3, seed=0):
    features = np.random.default_rng(seed).normal(size=(count, frames, dim)).astype(np.float16)
    labels = np.arange(count) % 3
    return features, labels


def test_balanced_weights_match_the_formula():
    labels = np.array([0] * 78 + [1] * 22)
    weights = balanced_class_weights(labels, 2)
    np.testing.assert_allclose(weights, [100 / (2 * 78), 100 / (2 * 22)], rtol=1e-6)
    assert np.sum(weights[labels]) == pytest.approx(100, rel=1e-5)  # total weight preserved


def test_explicit_weights_need_every_class():
    assert explicit_class_weights({"calm": 1, "fight": 3.5}, ["calm", "fight"]).tolist() == [1.0, 3.5]
    with pytest.raises(VidclsError, match=r"unknown: \['fihgt'\], missing: \['fight'\]"):
        explicit_class_weights({"calm": 1, "fihgt": 3}, ["calm", "fight"])


def test_focal_alpha_from_frequencies():
    labels = np.array([0] * 78 + [1] * 22)
    np.testing.assert_allclose(focal_alpha_from_frequencies(labels, 2), [0.22, 0.78], atol=1e-9)


def test_dataset_batches_one_hot_labels_and_weights():
    features, labels = _data()
    weights = np.arange(10, dtype=np.float32)
    source = BatchSource(features, labels, 3, batch_size=4, training=True, seed=0, sample_weights=weights)
    batches = list(make_dataset(source))
    assert [b[1].shape[0] for b in batches] == [4, 4, 2]
    x = np.concatenate([b[0][0].numpy() for b in batches])
    masks = np.concatenate([b[0][1].numpy() for b in batches])
    y, w = (np.concatenate([b[i].numpy() for b in batches]) for i in (1, 2))
    assert x.dtype == np.float16 and y.shape == (10, 3) and (masks == 1).all()  # as cached: the model casts
    order = w.astype(int)  # the weights identify each sample after shuffling
    np.testing.assert_array_equal(y.argmax(1), labels[order])
    np.testing.assert_allclose(x, features[order].astype(np.float32))
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))


def test_every_epoch_reshuffles_and_the_same_seed_repeats_it():
    features, labels = _data(count=40)
    orders = [BatchSource(features, labels, 3, 8, training=True, seed=5).epoch_order(e) for e in (0, 1)]
    assert orders[0].tolist() != orders[1].tolist()
    again = BatchSource(features, labels, 3, 8, training=True, seed=5)
    assert again.epoch_order(1).tolist() == orders[1].tolist()
    first = [b[0][0] for b in again()]
    second = [b[0][0] for b in BatchSource(features, labels, 3, 8, training=True, seed=5)()]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_evaluation_order_is_the_cache_order():
    features, labels = _data()
    assert BatchSource(features, labels, 3, 4, training=False).epoch_order(3).tolist() == list(range(10))


def test_a_fixed_split_kept_in_memory_reads_the_source_once():
    class Counted(BatchSource):
        passes = 0

        def __call__(self):
            Counted.passes += 1
            return super().__call__()

    features, labels = _data()
    kept = make_dataset(Counted(features, labels, 3, batch_size=4, training=False), keep_in_memory=True)
    seen = [np.concatenate([batch[0][0].numpy() for batch in kept]) for _ in range(3)]
    assert Counted.passes == 1  # later passes come from memory
    for features_seen in seen:
        np.testing.assert_array_equal(features_seen, features.astype(np.float32))
    again = make_dataset(Counted(features, labels, 3, batch_size=4, training=False))
    for _ in range(2):
        list(again)
    assert Counted.passes == 3  # not kept: the generator runs every pass
    with pytest.raises(VidclsError, match="keep_in_memory is for a fixed split"):
        make_dataset(BatchSource(features, labels, 3, batch_size=4, training=True), keep_in_memory=True)


def test_drop_remainder_for_multi_replica():
    features, labels = _data()
    source = BatchSource(features, labels, 3, batch_size=4, training=False, drop_remainder=True)
    assert source.steps_per_epoch == 2 and len(list(make_dataset(source))) == 2


def test_balanced_sampling_draws_classes_equally():
    labels = np.array([0] * 900 + [1] * 100)
    source = BatchSource(np.zeros((1000, 1, 1), np.float16), labels, 2, 100, training=True, sampling="balanced")
    drawn = np.concatenate([labels[source.epoch_order(epoch)] for epoch in range(5)])
    assert abs(np.mean(drawn == 1) - 0.5) < 0.03  # 10% of the data, half of the draws
    with pytest.raises(VidclsError, match="Unknown data.sampling 'oversample'"):
        BatchSource(np.zeros((2, 1, 1)), np.array([0, 1]), 2, 1, training=True, sampling="oversample")


ALL_AUGMENTATIONS = AugmentConfig(crop_min=0.6, speed=0.3, jitter=1.0, noise_std=0.1, feature_dropout=0.2,
                                  mixup_alpha=0.4, cutmix_prob=1.0)


def test_augmentation_keeps_shapes_and_label_sums():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 8, 5)).astype(np.float32)
    targets = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 16)]
    weights = rng.uniform(0.5, 2, 16).astype(np.float32)
    masks = np.ones((16, 8), np.float32)
    masks[:, 5:] = 0  # short clips
    x, m, y, w = augment_batch(features, masks, targets, weights, rng, ALL_AUGMENTATIONS)
    assert x.shape == features.shape and m.shape == masks.shape and y.shape == targets.shape and w.shape == weights.shape
    assert set(np.unique(m)) <= {0.0, 1.0} and (m[:, 0] == 1).all()
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-6)
    assert not np.array_equal(x, features) and (y.max(axis=1) < 1).any()  # something was mixed
    assert weights.min() - 1e-6 <= w.min() and w.max() <= weights.max() + 1e-6


def test_temporal_resampling_keeps_frame_order():
    from vidcls.data.augment import temporal_resample

    frames = np.arange(16, dtype=np.float32)[None, :, None].repeat(32, axis=0)  # value = frame index
    masks = np.ones((32, 16), np.float32)
    resampled, new_masks = temporal_resample(frames, masks, np.random.default_rng(1), crop_min=0.5, speed=0.5, jitter=1.5)
    resampled = resampled[..., 0]
    assert (np.diff(resampled, axis=1) >= 0).all() and resampled.min() >= 0 and resampled.max() <= 15
    assert len({tuple(row) for row in resampled}) > 1  # clips get different windows
    repeats = np.concatenate([np.zeros((32, 1), bool), np.diff(resampled, axis=1) == 0], axis=1)
    np.testing.assert_array_equal(new_masks == 0, repeats)  # a repeated frame is masked


def test_augmentation_is_off_for_evaluation():
    features, labels = _data()
    source = BatchSource(features, labels, 3, 10, training=False, augment=ALL_AUGMENTATIONS)
    ((x, masks), y), = list(source())
    np.testing.assert_array_equal(x, features.astype(np.float32))
    assert (masks == 1).all()
    assert set(np.unique(y)) == {0.0, 1.0}


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(AugmentConfig)])
def test_each_augmentation_alone_changes_training_batches(field):
    """Training batches skip augmentation when none is on; any one transform turned on
    (a field added later too) must still be applied."""
    features = np.random.default_rng(0).normal(size=(32, 8, 6)).astype(np.float16)
    labels = np.arange(32) % 3

    def first_epoch(augment):
        source = BatchSource(features, labels, 3, 32, training=True, seed=5, augment=augment)
        ((x, masks), targets), = list(source())
        return np.concatenate([np.asarray(x, np.float32).ravel(), masks.ravel(), targets.ravel()])

    plain = BatchSource(features, labels, 3, 32, training=True, seed=5)
    np.testing.assert_array_equal(list(plain())[0][0][0], features[plain.epoch_order(0)])  # the rows as cached
    np.testing.assert_array_equal(first_epoch(AugmentConfig()), first_epoch(None))
    one = dataclasses.replace(AugmentConfig(), **{field: getattr(ALL_AUGMENTATIONS, field)})
    assert not np.array_equal(first_epoch(one), first_epoch(None)), f"augment.{field} changed nothing"
