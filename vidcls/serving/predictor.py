"""Classifying videos end to end: decode, sample, embed with the run's backbone, classify."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidcls.features import (
    SampledClip,
    check_seconds,
    encoder_from_fingerprint,
    frame_rate,
    plan_windows,
    read_counted,
    read_sampled_frames,
    sampled_frame_mask,
)
from vidcls.run_dir import RunDir

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

    def predict(self, video: str | Path) -> Prediction:
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
        return read_sampled_frames(video, self.num_frames, self.backbone.image_size, self.encoder.partner_gap)

    def classify(self, clip) -> dict:
        """Backbone and classifier on a clip from `read`."""
        features, mask = self.embed(clip)
        probabilities = self._probabilities(features[None], mask[None])
        return scores_of(self.label_space, {target: values[0] for target, values in probabilities.items()})

    def predict_windows(self, video: str | Path, window_sec: float, stride_sec: float,
                        max_windows: int = MAX_WINDOWS) -> dict:
        """Scores a long video in windows of `window_sec` seconds every `stride_sec`
        seconds, and merges consecutive windows with the same label into events. Windows
        are T frames of one frame grid (`vidcls.features.windows`: the same frames a phone
        running `vidcls stream` encodes); one pass counts the frames, one decodes the grid
        frames, and each goes through the backbone once, however many windows overlap.

        Returns `{"video", "label", "score", "windows": [{"start_sec", "end_sec", "label",
        "score", ...}], "events": [{"label", "start_sec", "end_sec", "windows",
        "mean_score", "max_score"}], "frame_interval_sec", "effective_stride_sec"}` (the
        stride snaps to whole frame intervals); `label` is that of the mean of the windows'
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
        parallel with another video's `classify_windows`): the window plan (see
        `vidcls.features.plan_windows`, shared with `vidcls stream`) and its grid frames,
        each decoded once."""
        check_seconds("window", window_sec), check_seconds("stride", stride_sec)
        fps = frame_rate(video)

        def plan_for(total: int):
            return plan_windows(total, fps, self.num_frames, window_sec, stride_sec, self.encoder.partner_gap,
                                max_windows)

        # One decoding pass counts the frames and keeps those the plan for that count reads.
        counted = read_counted(video, lambda total: plan_for(total).source_frames(), self.backbone.image_size)
        plan = plan_for(counted.total)
        grid = SampledClip(frames=np.stack(counted.require(plan.frames)),
                           frame_range=(0, counted.total), valid_frames=len(set(plan.frames.tolist())),
                           partner_frames=np.stack(counted.require(plan.partners)) if len(plan.partners) else None)
        return {"video": str(video), "plan": plan, "grid": grid}

    def classify_windows(self, read: dict) -> dict:
        """The model half of `predict_windows`, on what `read_windows` returned: every
        grid frame through the backbone once, each window's T rows through the classifier."""
        plan = read["plan"]
        features = self.encoder.encode([read["grid"]])[0].astype(np.float32)
        probabilities = self._probabilities(features[plan.windows], plan.masks)
        return windows_prediction(read["video"], plan, probabilities, self.label_space)

    def embed(self, clip) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's inputs for a clip from `read`: features `[T, D]` (float32 values
        of the float16 the cache stores, so the classifier sees what it was trained on)
        and the frame mask `[T]`."""
        features = self.encoder.encode([clip])[0].astype(np.float32)
        return features, sampled_frame_mask(clip.total_frames, self.num_frames)

    def _probabilities(self, features: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
        """`{target: [n, K]}` for the clips of `features` `[n, T, D]`."""
        from vidcls.models import outputs_by_target, predict

        return outputs_by_target(predict(self.model, [features, masks]), self.label_space)

def scores_of(label_space: dict, probabilities: dict[str, np.ndarray]) -> dict:
    """`{"label", "score", "probabilities"}` of one clip's `{target: [K]}` (with several
    targets, the action and each target's own under `targets`)."""
    targets = {}
    for target, names in label_space.items():
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


def windows_prediction(video, plan, probabilities: dict[str, np.ndarray], label_space: dict) -> Prediction:
    """The windows, their events and the overall label, from per-window `{target: [W, K]}`
    on `plan` (a `WindowPlan`)."""
    windows = [dict(zip(("start_sec", "end_sec"), plan.times(row)),
                    **scores_of(label_space, {target: values[row] for target, values in probabilities.items()}))
               for row in range(len(plan.windows))]
    overall = scores_of(label_space, {target: values.mean(axis=0) for target, values in probabilities.items()})
    return Prediction({"video": str(video), "label": overall["label"], "score": overall["score"],
                       "window_sec": plan.window_sec, "stride_sec": plan.stride_sec,
                       "frame_interval_sec": round(plan.frame_interval_sec, 6),
                       "effective_stride_sec": round(plan.step * plan.frame_interval_sec, 6),
                       "windows": windows, "events": merge_events(windows)})


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
