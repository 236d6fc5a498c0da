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
    groups = None
    if config.data.group_by:
        missing = [entry["clip_id"] for entry in cache.entries if config.data.group_by not in entry]
        if missing:
            raise VidclsError(
                f"data.group_by is '{config.data.group_by}' but {len(missing)} clip(s) of {cache.root} have no such "
                f"manifest key (first: {missing[0]}); keys of that clip: {sorted(cache.entries[0])}")
        groups = [str(entry[config.data.group_by]) for entry in cache.entries]
    # Stratified by the first target (the label; the verb of verb + noun).
    return stratified_split(clip_ids, [str(entry[config.data.targets[0]]) for entry in cache.entries],
                            config.data.val_fraction, config.data.test_fraction, config.train.seed, groups)
