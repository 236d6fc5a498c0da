#!/usr/bin/env python3
"""Same as `vidcls train` (same flags), e.g.:

    python train_dual_gpu.py --cache-dir cache --run-dir runs/a --mixed-precision --xla

Every visible GPU is used through MirroredStrategy; --batch-size is the global batch.
"""

import sys

from vidcls.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
