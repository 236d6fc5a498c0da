"""Stratified, seeded train/val/test splits of clip ids."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from vidcls.errors import VidclsError

SPLITS = ("train", "val", "test")


def stratified_split(clip_ids: list[str], labels: list[str], val_fraction: float,
                     test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Splits each class separately so every split keeps the class proportions.

    Per class of n clips, round(n * fraction) go to val and to test, at least one each when
    the class has three clips or more; the rest train. The same seed gives the same split.

    Raises:
        VidclsError: fractions outside [0, 1) or summing to 1 or more, or a class left
            with no training clip.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise VidclsError(
            f"Expected data.val_fraction and data.test_fraction in [0, 1) summing to less than 1; "
            f"received {val_fraction} and {test_fraction}"
        )
    by_class: dict[str, list[str]] = defaultdict(list)
    for clip_id, label in zip(clip_ids, labels):
        by_class[label].append(clip_id)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        members = sorted(by_class[label])
        rng.shuffle(members)
        count = len(members)
        num_test = _share(count, test_fraction)
        num_val = _share(count, val_fraction)
        if count - num_test - num_val < 1:
            raise VidclsError(
                f"Class '{label}' has {count} clip(s): too few for a train/val/test split "
                f"with fractions {val_fraction}/{test_fraction}; add clips or lower the fractions"
            )
        splits["test"] += members[:num_test]
        splits["val"] += members[num_test:num_test + num_val]
        splits["train"] += members[num_test + num_val:]
    return {name: sorted(ids) for name, ids in splits.items()}


def _share(count: int, fraction: float) -> int:
    share = int(round(count * fraction))
    return max(share, 1) if fraction > 0 and count >= 3 else share
