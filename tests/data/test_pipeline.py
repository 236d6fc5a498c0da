import numpy as np
import pytest

from vidcls.data import balanced_class_weights, make_dataset


def test_balanced_weights_match_the_formula():
    labels = np.array([0] * 78 + [1] * 22)
    weights = balanced_class_weights(labels, 2)
    np.testing.assert_allclose(weights, [100 / (2 * 78), 100 / (2 * 22)], rtol=1e-6)
    assert np.sum(weights[labels]) == pytest.approx(100, rel=1e-5)  # total weight preserved


def test_dataset_batches_one_hot_labels_and_weights():
    features = np.random.default_rng(0).normal(size=(10, 4, 3)).astype(np.float16)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    weights = np.arange(10, dtype=np.float32)
    batches = list(make_dataset(features, labels, 3, batch_size=4, training=True, seed=0, sample_weights=weights))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    x, y, w = (np.concatenate([b[i].numpy() for b in batches]) for i in range(3))
    assert x.dtype == np.float32 and y.shape == (10, 3)
    order = w.astype(int)  # the weights identify each sample after shuffling
    np.testing.assert_array_equal(y.argmax(1), labels[order])
    np.testing.assert_allclose(x, features[order].astype(np.float32))
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))


def test_drop_remainder_for_multi_replica():
    features = np.zeros((10, 2, 2), np.float16)
    batches = list(make_dataset(features, np.zeros(10, int), 2, batch_size=4, training=False, drop_remainder=True))
    assert len(batches) == 2
