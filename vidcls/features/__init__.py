"""Feature stage: decode videos, sample frames, embed them with a frozen CNN, cache them."""

from vidcls.features.backbones import BACKBONES, Backbone, get_backbone
from vidcls.features.cache import FeatureCache
from vidcls.features.extractor import ExtractSummary, extract
from vidcls.features.video import VideoReadError, read_sampled_frames, segment_centre_indices

__all__ = [
    "BACKBONES", "Backbone", "ExtractSummary", "FeatureCache", "VideoReadError",
    "extract", "get_backbone", "read_sampled_frames", "segment_centre_indices",
]
