"""Videos in: finding labelled videos (a folder per class, or an annotations CSV), the
clips they hold, and the synthetic demo set. Below every other stage; imports no
TensorFlow."""

from vidcls.videos.annotations import read_annotations
from vidcls.videos.clips import ClipRange, VideoItem
from vidcls.videos.discovery import VIDEO_SUFFIXES, discover_videos
from vidcls.videos.synth import SYNTH_CLASSES, SYNTH_VERB_NOUN, VERB_NOUN_CSV, SynthResult, synthesize

__all__ = [
    "ClipRange", "SYNTH_CLASSES", "SYNTH_VERB_NOUN", "VERB_NOUN_CSV", "SynthResult", "VIDEO_SUFFIXES", "VideoItem",
    "discover_videos", "read_annotations", "synthesize",
]
