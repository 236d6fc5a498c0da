"""Which cached clips a run trains, validates and tests on (splits.json)."""

from __future__ import annotations

import logging

from vidcls.config import ExperimentConfig
from vidcls.data import read_split_file, stratified_split
from vidcls.errors import VidclsError
from vidcls.run_dir import RunDir

logger = logging.getLogger("vidcls")


def load_or_make_splits(run: RunDir, cache, config: ExperimentConfig) -> dict:
    """A resumed run's own splits; else `data.split_file`'s; else a stratified split (by
    the first target), grouped by `data.group_by` when it is set."""
    if run.splits_path.is_file():
        return run.splits()  # resuming: the same clips as before
    clip_ids = [entry["clip_id"] for entry in cache.entries]
    if config.data.split_file:
        splits = read_split_file(config.data.split_file, clip_ids, [entry["video"] for entry in cache.entries])
        left_out = len(clip_ids) - sum(len(ids) for ids in splits.values())
        if left_out:
            logger.info("%d cached clip(s) are in no split of %s and are not used", left_out, config.data.split_file)
        return splits
    groups = clip_groups(cache.entries, config.data.group_by, cache.root) if config.data.group_by else None
    # Stratified by the first target (the label; the verb of verb + noun).
    return stratified_split(clip_ids, [str(entry[config.data.targets[0]]) for entry in cache.entries],
                            config.data.val_fraction, config.data.test_fraction, config.train.seed, groups)


def clip_groups(entries: list[dict], group_by: str, root, setting: str = "data.group_by") -> list[str]:
    """Each clip's `group_by` manifest value, as text.

    Raises:
        VidclsError: naming `setting` (the option the key came from), how many clips of the
            cache at `root` lack the key, the first of them, and the keys that clip does have.
    """
    missing = [entry for entry in entries if group_by not in entry]
    if missing:
        raise VidclsError(
            f"{setting} is '{group_by}' but {len(missing)} clip(s) of {root} have no such manifest key "
            f"(first: {missing[0].get('clip_id', '?')}); keys of that clip: {sorted(missing[0])}")
    return [str(entry[group_by]) for entry in entries]
