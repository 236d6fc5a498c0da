"""Data stage: dataset discovery, synthetic videos, splits and tf.data pipelines.

Importing this package does not import TensorFlow; `make_dataset` does when called.
"""

from vidcls.data.annotations import read_annotations
from vidcls.data.discovery import VideoItem, discover_videos
from vidcls.data.labelled import LabelledFeatures, load_labelled_features
from vidcls.data.pipeline import (
    BatchSource, balanced_class_weights, check_sampling, explicit_class_weights, focal_alpha_from_frequencies, make_dataset,
)
from vidcls.data.splits import SPLITS, read_split_file, stratified_split
from vidcls.data.tasks import (
    LabelSpace, action_names, build_label_space, encode_labels, label_space_from_json, label_space_to_json,
)
from vidcls.data.synth import SYNTH_CLASSES, SYNTH_VERB_NOUN, VERB_NOUN_CSV, SynthResult, synthesize

__all__ = [
    "BatchSource", "LabelledFeatures", "SPLITS", "SYNTH_CLASSES", "SYNTH_VERB_NOUN", "VERB_NOUN_CSV", "SynthResult", "VideoItem",
    "balanced_class_weights", "check_sampling", "discover_videos", "explicit_class_weights", "focal_alpha_from_frequencies", "load_labelled_features", "make_dataset",
    "LabelSpace", "action_names", "build_label_space", "encode_labels", "label_space_from_json", "label_space_to_json",
    "read_annotations", "read_split_file", "stratified_split", "synthesize",
]
