"""Train/val/test splits of clip ids: stratified and seeded, optionally grouped, or given."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError

SPLITS = ("train", "val", "test")


def stratified_split(clip_ids: list[str], labels: list[str], val_fraction: float,
                     test_fraction: float, seed: int, groups: list[str] | None = None) -> dict[str, list[str]]:
    """Splits each class separately so every split keeps the class proportions.

    Without groups: per class of n clips, round(n * fraction) go to val and to test, at
    least one each when the class has three clips or more; the rest train.

    With groups (source video, participant, scene): whole groups are assigned, so no group
    straddles two splits. Each group counts for its majority class and the same rule
    applies to groups instead of clips (round(n_groups * fraction) per split), so the
    clip proportions hold only approximately when groups differ in size. The same seed
    gives the same split.

    Raises:
        VidclsError: fractions outside [0, 1) or summing to 1 or more, or a class left
            with no training clip.
    """
    _check_fractions(val_fraction, test_fraction)
    check_unique(clip_ids)
    units = _units(clip_ids, labels, groups)  # (members, label) per unit
    by_class: dict[str, list[list[str]]] = defaultdict(list)
    for members, label in units:
        by_class[label].append(members)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        class_units = sorted(by_class[label])
        order = rng.permutation(len(class_units))
        class_units = [class_units[i] for i in order]
        count = len(class_units)
        num_test, num_val = _share(count, test_fraction), _share(count, val_fraction)
        if count - num_test - num_val < 1:
            what = "group(s)" if groups else "clip(s)"
            raise VidclsError(
                f"Class '{label}' has {count} {what}: too few for a train/val/test split "
                f"with fractions {val_fraction}/{test_fraction}; add clips or lower the fractions"
            )
        for name, chosen in (("test", class_units[:num_test]), ("val", class_units[num_test:num_test + num_val]),
                             ("train", class_units[num_test + num_val:])):
            splits[name] += [clip_id for members in chosen for clip_id in members]
    return {name: sorted(ids) for name, ids in splits.items()}


def read_split_file(path: str | Path, clip_ids: list[str], videos: list[str]) -> dict[str, list[str]]:
    """A user's split: JSON `{"train": [...], "val": [...], "test": [...]}` of clip ids or
    video paths. Every listed entry must exist; a clip in two splits is an error; clips
    the file does not mention are left out (and reported by the caller)."""
    path = Path(path)
    check_unique(clip_ids)
    if not path.is_file():
        raise VidclsError(f"Split file {path} does not exist")
    try:
        given = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise VidclsError(f"Split file {path} is not valid JSON: {error}") from None
    if not isinstance(given, dict) or not set(given) <= set(SPLITS) or "train" not in given:
        received = sorted(given) if isinstance(given, dict) else type(given).__name__
        raise VidclsError(f"Expected split file {path} to map 'train' (and optionally 'val', 'test') to lists; "
                          f"received keys {received}")
    by_video: dict[str, list[str]] = defaultdict(list)
    for clip_id, video in zip(clip_ids, videos):
        by_video[video].append(clip_id)
    known = set(clip_ids)
    splits = {}
    for name in SPLITS:
        resolved = []
        for entry in given.get(name, []):
            if entry in known:
                resolved.append(entry)
            elif entry in by_video:
                resolved += by_video[entry]
            else:
                raise VidclsError(f"'{entry}' in the {name} list of {path} is neither a clip id nor a video path in the cache")
        splits[name] = sorted(set(resolved))
    seen = Counter(clip_id for ids in splits.values() for clip_id in ids)
    shared = sorted(clip_id for clip_id, times in seen.items() if times > 1)
    if shared:
        raise VidclsError(f"Clip(s) {shared[:5]} appear in more than one split of {path}")
    return splits


def check_unique(clip_ids: list[str]) -> None:
    """Refuses a clip list that names a clip twice: splitting it could put one clip in
    train and test at once."""
    repeated = sorted(clip_id for clip_id, times in Counter(clip_ids).items() if times > 1)
    if repeated:
        raise VidclsError(f"{len(repeated)} clip id(s) appear more than once (first: {repeated[:3]}); a split of "
                          "them could put one clip in train and test. Deduplicate the manifest or annotations")


def _units(clip_ids, labels, groups):
    if groups is None:
        return [([clip_id], label) for clip_id, label in zip(clip_ids, labels)]
    members: dict[str, list[str]] = defaultdict(list)
    votes: dict[str, Counter] = defaultdict(Counter)
    for clip_id, label, group in zip(clip_ids, labels, groups):
        key = group if group is not None else f"clip:{clip_id}"  # ungrouped clips stand alone
        members[key].append(clip_id)
        votes[key][label] += 1
    return [(sorted(members[key]), min(votes[key].most_common(), key=lambda kv: (-kv[1], kv[0]))[0]) for key in members]


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise VidclsError(
            f"Expected data.val_fraction and data.test_fraction in [0, 1) summing to less than 1; "
            f"received {val_fraction} and {test_fraction}"
        )


def _share(count: int, fraction: float) -> int:
    share = int(round(count * fraction))
    return max(share, 1) if fraction > 0 and count >= 3 else share
