"""Label spaces: the class names of each target a run predicts.

A run predicts one or more *targets*, each a key of the cache manifest: `label` (the
default), or `verb` and `noun` for EPIC-KITCHENS-style clips, where the action is the
pair and counts as right only when both are. A label space maps each target to its class
names in index order, e.g. `{"verb": ["close", "open"], "noun": ["cup", "door"]}`.

`RUN_DIR/labels.json` holds the class list of a single-target run (the directory
contract) and the whole mapping when there are several targets.
"""

from __future__ import annotations

import numpy as np

from vidcls.errors import VidclsError

LabelSpace = dict  # target name -> class names, in index order


def build_label_space(entries: list[dict], targets: list[str], source: str) -> LabelSpace:
    """The sorted class names of every target over `entries` (manifest lines).

    Raises:
        VidclsError: a target listed twice, or a clip without a value for a target.
    """
    if not targets or len(set(targets)) != len(targets):
        raise VidclsError(f"Expected data.targets to name distinct manifest keys; received {targets}")
    for target in targets:
        missing = [entry["clip_id"] for entry in entries if entry.get(target) in (None, "")]
        if missing:
            keys = sorted(entries[0]) if entries else []
            raise VidclsError(
                f"data.targets includes '{target}' but {len(missing)} clip(s) of {source} have no such "
                f"manifest value (first: {missing[0]}); keys of the first clip: {keys}")
    space = {target: sorted({str(entry[target]) for entry in entries}) for target in targets}
    for target, names in space.items():
        if len(names) < 2:
            raise VidclsError(f"Expected at least 2 classes of '{target}' in {source}; found {names}")
    return space


def encode_labels(entries: list[dict], space: LabelSpace) -> np.ndarray:
    """Class indices `[N, targets]` (int64) of `entries` in the order of `space`.

    Raises:
        VidclsError: a label missing from the label space, naming the target.
    """
    columns = []
    for target, names in space.items():
        index = {name: position for position, name in enumerate(names)}
        values = [str(entry.get(target)) for entry in entries]
        unknown = sorted(set(values) - index.keys())
        if unknown:
            raise VidclsError(f"Label(s) {unknown} of '{target}' are not in the run's label map {names}")
        columns.append([index[value] for value in values])
    return np.array(columns, dtype=np.int64).T.reshape(len(entries), len(space))


def label_space_from_json(stored, targets: list[str], path) -> LabelSpace:
    """Reads `labels.json`: a list (one target, named by `targets[0]`) or a mapping."""
    if isinstance(stored, list):
        return {targets[0]: stored}
    if isinstance(stored, dict) and all(isinstance(names, list) for names in stored.values()):
        return dict(stored)
    raise VidclsError(f"Expected a list of class names or a mapping of target -> class names in {path}")


def label_space_to_json(space: LabelSpace):
    return next(iter(space.values())) if len(space) == 1 else space


def action_names(space: LabelSpace, indices: np.ndarray) -> list[str]:
    """Rows of per-target indices `[N, targets]` as "verb/noun" names (one target: its class)."""
    return ["/".join(names[int(index)] for names, index in zip(space.values(), row)) for row in indices]
