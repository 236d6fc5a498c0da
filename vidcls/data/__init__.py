"""Data stage: from a feature cache to batches: labelled features, label spaces, splits, augmentation
and tf.data pipelines (finding videos is `vidcls.videos`).

Importing this package does not import TensorFlow; `make_dataset` does when called.
"""

from vidcls.data.augment import take_frames, temporal_crops
from vidcls.data.labelled import LabelledFeatures, load_labelled_features
from vidcls.data.pipeline import (
    BatchSource,
    balanced_class_weights,
    check_sampling,
    explicit_class_weights,
    focal_alpha_from_frequencies,
    make_dataset,
)
from vidcls.data.splits import SPLITS, read_split_file, stratified_split
from vidcls.data.tasks import (
    LabelSpace,
    action_names,
    build_label_space,
    encode_labels,
    label_space_from_json,
    label_space_to_json,
)

__all__ = [
    "BatchSource", "LabelledFeatures", "SPLITS", "balanced_class_weights", "check_sampling",
    "explicit_class_weights", "focal_alpha_from_frequencies", "load_labelled_features", "make_dataset",
    "LabelSpace", "action_names", "build_label_space", "encode_labels", "label_space_from_json",
    "label_space_to_json", "read_split_file", "stratified_split", "take_frames", "temporal_crops"
]
