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


def test_grouped_split_never_puts_one_group_in_two_splits():
    ids, labels, groups = [], [], []
    for participant in range(20):
        for clip in range(5):
            ids.append(f"p{participant}_c{clip}")
            labels.append("fight" if (participant + clip) % 3 else "calm")
            groups.append(f"P{participant:02d}")
    splits = stratified_split(ids, labels, 0.2, 0.2, seed=3, groups=groups)
    group_of = dict(zip(ids, groups))
    owners = {name: {group_of[i] for i in splits[name]} for name in splits}
    assert not owners["train"] & owners["test"] and not owners["train"] & owners["val"] and not owners["val"] & owners["test"]
    assert sorted(sum(splits.values(), [])) == sorted(ids)
    assert splits == stratified_split(ids, labels, 0.2, 0.2, seed=3, groups=groups)


def test_user_split_file_with_clip_ids_and_video_paths(tmp_path):
    from vidcls.data import read_split_file

    path = tmp_path / "split.json"
    path.write_text('{"train": ["a", "videos/long.mp4"], "test": ["d"]}')
    splits = read_split_file(path, ["a", "b1", "b2", "c", "d"], ["a.mp4", "videos/long.mp4", "videos/long.mp4", "c.mp4", "d.mp4"])
    assert splits == {"train": ["a", "b1", "b2"], "val": [], "test": ["d"]}


@pytest.mark.parametrize("text, message", [
    ('{"train": ["zz"]}', "'zz' in the train list of .* is neither a clip id nor a video path"),
    ('{"train": ["a"], "test": ["a"]}', r"Clip\(s\) \['a'\] appear in more than one split"),
    ('{"training": ["a"]}', "Expected split file .* to map 'train'"),
    ("not json", "is not valid JSON"),
])
def test_bad_split_files(tmp_path, text, message):
    from vidcls.data import read_split_file

    path = tmp_path / "split.json"
    path.write_text(text)
    with pytest.raises(VidclsError, match=message):
        read_split_file(path, ["a", "b"], ["a.mp4", "b.mp4"])
