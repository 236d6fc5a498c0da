"""Classifying videos end to end: decode, sample, embed with the run's backbone, classify."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError
from vidcls.features import get_backbone, read_sampled_frames, sampled_frame_mask
from vidcls.run_dir import RunDir


class Predictor:
    """Loads a trained run once and classifies any number of videos.

    The backbone is rebuilt exactly as it was when the training cache was filled (same
    architecture, image size and weights); its weights checksum must match the cache's,
    otherwise the features would differ from those the classifier learned on.

    Args:
        run_dir: a finished `vidcls train` run.
        weights: where to load the backbone weights from, when the cache was built from a
            weights file that has moved since.

    Example:
        >>> Predictor("runs/demo").predict("clip.mp4")["label"]
        'clockwise'
    """

    def __init__(self, run_dir: str | Path, weights: str | None = None):
        from vidcls.models import load_model

        run = RunDir(run_dir)
        run.require_trained()
        self.fingerprint = run.features()["fingerprint"]
        self.label_space = run.label_space()
        self.num_frames = int(self.fingerprint["num_frames"])
        source = weights or self.fingerprint.get("weights_source") or self.fingerprint["weights"]
        self.backbone = get_backbone(self.fingerprint["backbone"], source, self.fingerprint["image_size"],
                                     self.fingerprint.get("seed", 0), batch_size=self.num_frames)
        if self.backbone.weights_checksum() != self.fingerprint["weights_checksum"]:
            raise VidclsError(
                f"The {self.fingerprint['backbone']} weights loaded from {source!r} differ from those that "
                f"built the training cache (checksum {self.backbone.weights_checksum()}, expected "
                f"{self.fingerprint['weights_checksum']}); pass the original weights with --weights"
            )
        self.model = load_model(run.best_model_path)

    def predict(self, video: str | Path) -> dict:
        """Returns `{"video", "label", "score", "probabilities": {class: p}}`.

        With several targets (verb + noun), `label` is the action ("open/door"), `score`
        the product of the targets' top probabilities, and `targets` holds each target's
        `{"label", "score", "probabilities"}`.

        Raises:
            VideoReadError: the video cannot be decoded.
        """
        clip = read_sampled_frames(video, self.num_frames, self.backbone.image_size)
        # Through float16 as in the cache, so the classifier sees what it was trained on.
        features = self.backbone.embed(clip.frames).astype(np.float16).astype(np.float32)
        mask = sampled_frame_mask(clip.total_frames, self.num_frames)
        # A direct call: predict() would build a new tf.function per video.
        outputs = self.model([features[None], mask[None]], training=False)
        if not isinstance(outputs, dict):
            outputs = {next(iter(self.label_space)): outputs}
        targets = {}
        for target, names in self.label_space.items():
            probabilities = np.asarray(outputs[target][0], dtype=np.float64)
            best = int(probabilities.argmax())
            targets[target] = {"label": names[best], "score": float(probabilities[best]),
                               "probabilities": {name: float(p) for name, p in zip(names, probabilities)}}
        if len(targets) == 1:
            return {"video": str(video), **next(iter(targets.values()))}
        return {
            "video": str(video),
            "label": "/".join(result["label"] for result in targets.values()),
            "score": float(np.prod([result["score"] for result in targets.values()])),
            "targets": targets,
        }
