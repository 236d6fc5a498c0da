"""The memory budget that decides whether a run's features are held in RAM or streamed
from the cache's packed file."""

from __future__ import annotations

import logging

import numpy as np

from vidcls.config import ExperimentConfig
from vidcls.memory import available_memory

logger = logging.getLogger("vidcls")


def features_fit_in_memory(config: ExperimentConfig, cache, num_clips: int) -> bool:
    """Whether the train and val features fit `data.memory_budget_gb` (0: half of what
    this process may still use, the container's memory limit included)."""
    needed = num_clips * int(np.prod(cache.feature_shape)) * 2  # float16
    if config.data.memory_budget_gb:
        budget, source = config.data.memory_budget_gb * 1e9, "data.memory_budget_gb"
    else:
        available = available_memory()
        budget, source = available.bytes / 2, f"half of {available.describe()}"
    logger.info("memory budget for features: %.2f GB (%s); they need %.2f GB", budget / 1e9, source, needed / 1e9)
    if needed <= budget:
        return True
    logger.info("features need %.2f GB, over the %.2f GB memory budget: streaming them from %s/packed",
                needed / 1e9, budget / 1e9, cache.root)
    return False
