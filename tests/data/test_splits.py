import pytest

from vidcls.data import stratified_split
from vidcls.errors import VidclsError


def _dataset(counts):
    ids, labels = [], []
    for label, count in counts.items():
        ids += [f"{label}_{i}" for i in range(count)]
        labels += [label] * count
    return ids, labels


def test_split_is_stratified_disjoint_and_complete():
    ids, labels = _dataset({"fight": 78, "calm": 22})
    splits = stratified_split(ids, labels, 0.15, 0.15, seed=0)
    assert sorted(sum(splits.values(), [])) == sorted(ids)
    assert not set(splits["train"]) & set(splits["test"])
    assert sum(i.startswith("fight") for i in splits["test"]) == 12  # round(78 * 0.15)
    assert sum(i.startswith("calm") for i in splits["test"]) == 3


def test_same_seed_same_split_other_seed_other_split():
    ids, labels = _dataset({"a": 30, "b": 30})
    assert stratified_split(ids, labels, 0.2, 0.2, 1) == stratified_split(ids, labels, 0.2, 0.2, 1)
    assert stratified_split(ids, labels, 0.2, 0.2, 1) != stratified_split(ids, labels, 0.2, 0.2, 2)


def test_class_too_small_to_split_is_an_error():
    ids, labels = _dataset({"a": 30, "rare": 2})
    with pytest.raises(VidclsError, match="Class 'rare' has 2 clip"):
        stratified_split(ids, labels, 0.3, 0.3, 0)


def test_bad_fractions_are_an_error():
    with pytest.raises(VidclsError, match="summing to less than 1"):
        stratified_split(["a"], ["x"], 0.6, 0.5, 0)
