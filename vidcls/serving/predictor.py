"""Classifying videos end to end: decode, sample, embed with the run's backbone, classify."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError
from vidcls.features import (
    VideoReadError, encoder_from_fingerprint, read_clips, read_sampled_frames, sampled_frame_mask, video_timing,
)
from vidcls.run_dir import RunDir
from vidcls.videos import ClipRange

# Windows per video at most (`predict --window`, `serve ?window=`): each is T frames
# through the backbone; a tiny stride on a long video would otherwise hold the model for
# minutes (measured: 586 windows, 61 s, every other client stalled).
MAX_WINDOWS = 200


class Predictor:
    """Loads a trained run once and classifies any number of videos.

    The backbone and its streams are rebuilt exactly as they were when the training cache
    was filled (same architecture, image size, grid, weights, streams); the weights
    checksum must match the cache's, otherwise the features would differ from those the
    classifier learned on.

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
        self.run_dir = run.root
        self.fingerprint = run.features()["fingerprint"]
        self.label_space = run.label_space()
        self.num_frames = int(self.fingerprint["num_frames"])
        self.encoder = encoder_from_fingerprint(self.fingerprint, weights,
                                                batch_size=self.num_frames * len(self.fingerprint.get("streams", [0])))
        self.backbone = self.encoder.backbone
        self.model = load_model(run.best_model_path)

    def predict(self, video: str | Path) -> "Prediction":
        """Returns `{"video", "label", "score", "probabilities": {class: p}}`.

        With several targets (verb + noun), `label` is the action ("open/door"), `score`
        the product of the targets' top probabilities, and `targets` holds each target's
        `{"label", "score", "probabilities"}`.

        Raises:
            VideoReadError: the video cannot be decoded.
        """
        return Prediction({"video": str(video), **self.classify(self.read(video))})

    def read(self, video: str | Path):
        """Decodes and samples `video` (the part that needs no model; callers may run it
        in parallel with `classify` of another video)."""
        return read_sampled_frames(video, self.num_frames, self.backbone.image_size, self.encoder.difference_gap)

    def classify(self, clip) -> dict:
        """Backbone and classifier on a clip from `read`."""
        features, mask = self.embed(clip)
        probabilities = self._probabilities(features[None], mask[None])
        return self._result({target: values[0] for target, values in probabilities.items()})

    def predict_windows(self, video: str | Path, window_sec: float, stride_sec: float,
                        max_windows: int = MAX_WINDOWS) -> dict:
        """Scores a long video in windows of `window_sec` seconds every `stride_sec`
        seconds (T frames sampled per window: one pass counts the frames, one decodes the
        windows' frames, however many windows overlap), and merges
        consecutive windows with the same label into events.

        Returns `{"video", "label", "score", "windows": [{"start_sec", "end_sec", "label",
        "score", ...}], "events": [{"label", "start_sec", "end_sec", "windows",
        "mean_score", "max_score"}]}`; `label` is that of the mean of the windows'
        probabilities. A video shorter than one window is one window.

        Raises:
            VidclsError: a window or stride that is not a positive finite number, or more
                than `max_windows` windows (0: no bound).
            VideoReadError: the video cannot be decoded.
        """
        return self.classify_windows(self.read_windows(video, window_sec, stride_sec, max_windows))

    def read_windows(self, video: str | Path, window_sec: float, stride_sec: float,
                     max_windows: int = MAX_WINDOWS) -> dict:
        """The decoding half of `predict_windows` (no model: callers may run it in
        parallel with another video's `classify_windows`)."""
        for name, value in (("window", window_sec), ("stride", stride_sec)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise VidclsError(f"Expected --{name} to be a positive finite number of seconds; received {value}")
        fps, total = video_timing(video)
        length = max(1, int(round(window_sec * fps)))
        step = max(1, int(round(stride_sec * fps)))
        count = max(total - length, 0) // step + 1
        count += (count - 1) * step + length < total  # the tail gets a window too
        if max_windows and count > max_windows:
            raise VidclsError(
                f"window {window_sec} s every {stride_sec} s makes {count} windows of this {total / fps:.1f}-s video; "
                f"at most {max_windows} are allowed: use a stride of at least "
                f"{max(total - length, 0) / fps / max(max_windows - 2, 1):.3g} s")
        starts = list(range(0, max(total - length, 0) + 1, step))
        if starts[-1] + length < total:
            starts.append(total - length)
        ranges = [ClipRange(start_frame=start, end_frame=min(start + length, total)) for start in starts]
        clips = read_clips(video, ranges, self.num_frames, self.backbone.image_size, self.encoder.difference_gap)
        failed = [(start, clip) for start, clip in zip(starts, clips) if isinstance(clip, VideoReadError)]
        if failed:
            start, error = failed[0]
            raise VideoReadError(f"window at {start / fps:.2f} s: {error}")
        return {"video": str(video), "fps": fps, "clips": clips, "window_sec": window_sec, "stride_sec": stride_sec}

    def classify_windows(self, read: dict) -> dict:
        """The model half of `predict_windows`, on what `read_windows` returned."""
        clips, fps = read["clips"], read["fps"]
        embedded = [self.embed(clip) for clip in clips]
        probabilities = self._probabilities(np.stack([f for f, _ in embedded]), np.stack([m for _, m in embedded]))
        windows = [{"start_sec": round(clip.frame_range[0] / fps, 3), "end_sec": round(clip.frame_range[1] / fps, 3),
                    **self._result({target: values[row] for target, values in probabilities.items()})}
                   for row, clip in enumerate(clips)]
        overall = self._result({target: values.mean(axis=0) for target, values in probabilities.items()})
        return Prediction({"video": read["video"], "label": overall["label"], "score": overall["score"],
                           "window_sec": read["window_sec"], "stride_sec": read["stride_sec"], "windows": windows,
                           "events": merge_events(windows)})

    def embed(self, clip) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's inputs for a clip from `read`: features `[T, D]` (float32 values
        of the float16 the cache stores, so the classifier sees what it was trained on)
        and the frame mask `[T]`."""
        features = self.encoder.encode([clip])[0].astype(np.float32)
        return features, sampled_frame_mask(clip.total_frames, self.num_frames)

    def _probabilities(self, features: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
        """`{target: [n, K]}` for the clips of `features` `[n, T, D]`."""
        from vidcls.models import outputs_by_target

        # A direct call: predict() would build a new tf.function per video.
        return outputs_by_target(self.model([features, masks], training=False), self.label_space)

    def _result(self, probabilities: dict[str, np.ndarray]) -> dict:
        targets = {}
        for target, names in self.label_space.items():
            values = probabilities[target]
            best = int(np.argmax(values))
            targets[target] = {"label": names[best], "score": float(values[best]),
                               "probabilities": {name: float(p) for name, p in zip(names, values)}}
        if len(targets) == 1:
            return next(iter(targets.values()))
        return {
            "label": "/".join(result["label"] for result in targets.values()),
            "score": float(np.prod([result["score"] for result in targets.values()])),
            "targets": targets,
        }


def merge_events(windows: list[dict]) -> list[dict]:
    """Runs of consecutive windows with the same label, as events spanning them; where
    windows overlap, two neighbouring events meet in the middle of the overlap."""
    events = []
    for window in windows:
        if events and events[-1]["label"] == window["label"]:
            event = events[-1]
            event["end_sec"] = window["end_sec"]
            event["scores"].append(window["score"])
        else:
            start = window["start_sec"]
            if events and events[-1]["end_sec"] > start:
                # Overlapping windows (stride < window): split the overlap between the two events.
                start = round((start + events[-1]["end_sec"]) / 2, 3)
                events[-1]["end_sec"] = start
            events.append({"label": window["label"], "start_sec": start, "end_sec": window["end_sec"],
                           "scores": [window["score"]]})
    return [{"label": event["label"], "start_sec": event["start_sec"], "end_sec": event["end_sec"],
             "windows": len(event["scores"]), "mean_score": float(np.mean(event["scores"])),
             "max_score": float(np.max(event["scores"]))} for event in events]


class Prediction(dict):
    """What `Predictor.predict` / `predict_windows` return: a JSON-ready dict (`video`,
    `label`, `score`, and `probabilities`, `targets` or `windows` + `events`)."""

    def describe(self) -> str:
        """The lines `vidcls predict` prints."""
        video = self["video"]
        if "events" in self:
            lines = [f"{video}: {self['label']} ({self['score']:.3f}) over {len(self['windows'])} windows"]
            lines += [f"  {event['start_sec']:8.2f}-{event['end_sec']:8.2f} s  {event['label']}  (mean "
                      f"{event['mean_score']:.3f}, max {event['max_score']:.3f}, {event['windows']} windows)"
                      for event in self["events"]]
            return "\n".join(lines)
        return f"{video}: {self['label']} ({self['score']:.3f})  {_scores_text(self)}"


def _scores_text(result: dict) -> str:
    if "targets" in result:
        return "  ".join(f"{target}: {_scores_text(values)}" for target, values in result["targets"].items())
    return " ".join(f"{name}={p:.3f}" for name, p in result["probabilities"].items())
