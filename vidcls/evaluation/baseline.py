"""The simple baseline every accuracy claim is measured against: a linear model on clip
statistics of frame-to-frame feature changes.

On real surveillance footage this baseline (logistic regression on the per-dimension mean
and std of |x_t - x_{t-1}|) scored 0.67-0.71 in grouped cross-validation while the first
temporal models scored at chance: a model that does not beat it has learned the scenery,
not the action.
"""

from __future__ import annotations

import numpy as np

BASELINE_C = 0.01  # inverse L2 strength; strong, because a few hundred clips face 2 x D inputs


def motion_statistics(features: np.ndarray, chunk: int = 256) -> np.ndarray:
    """`[N, 2D]`: the mean and std over time of |x_t - x_{t-1}| of features `[N, T, D]`."""
    rows = []
    for start in range(0, len(features), chunk):
        block = np.asarray(features[start:start + chunk], np.float32)
        changes = np.abs(np.diff(block, axis=1))
        rows.append(np.concatenate([changes.mean(axis=1), changes.std(axis=1)], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 2 * features.shape[2]), np.float32)


def motion_statistics_baseline(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, num_classes: int,
                               c: float = BASELINE_C, seed: int = 0) -> np.ndarray:
    """Class probabilities `[n_test, num_classes]` of a standardised logistic regression
    trained on `train_x` (e.g. `motion_statistics`) and labels `train_y`; a class absent
    from training gets probability 0."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))
    model.fit(train_x, train_y)
    probabilities = np.zeros((len(test_x), num_classes))
    probabilities[:, model.classes_] = model.predict_proba(test_x)
    return probabilities
