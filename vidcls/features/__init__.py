"""Feature stage: decode videos, sample frames, embed them with a frozen CNN, cache them."""

from vidcls.features.backbones import BACKBONES, Backbone, get_backbone
from vidcls.features.cache import NOT_FINGERPRINT, FeatureCache
from vidcls.features.encoder import (
    DEFAULT_STREAMS,
    STREAMS,
    ClipEncoder,
    difference_images,
    encoder_from_fingerprint,
    stream_subset,
)
from vidcls.features.extractor import ExtractSummary, extract
from vidcls.features.packed import PackedRows, pack_cache
from vidcls.features.precision import cpu_bf16_flags, resolve_precision
from vidcls.features.sampling import PartnerGap, VideoReadError, sampled_frame_mask, segment_centre_indices
from vidcls.features.video import (
    CountedFrames,
    SampledClip,
    check_readable,
    frame_rate,
    read_clips,
    read_counted,
    read_sampled_frames,
    to_model_frame,
)
from vidcls.features.windows import WindowPlan, check_seconds, plan_windows

__all__ = [
    "BACKBONES", "DEFAULT_STREAMS", "NOT_FINGERPRINT", "Backbone", "ClipEncoder", "CountedFrames", "frame_rate", "read_counted",
    "ExtractSummary", "FeatureCache", "PackedRows", "PartnerGap", "STREAMS", "SampledClip", "VideoReadError", "WindowPlan",
    "check_readable", "check_seconds", "plan_windows", "to_model_frame", "difference_images",
    "encoder_from_fingerprint", "cpu_bf16_flags", "extract", "get_backbone", "pack_cache", "resolve_precision",
    "read_clips", "read_sampled_frames", "sampled_frame_mask", "segment_centre_indices", "stream_subset"
]
