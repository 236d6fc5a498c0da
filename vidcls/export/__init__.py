"""Export stage: SavedModel and TFLite, with parity checks in the LiteRT interpreter."""

from vidcls.export.exporter import describe_export, export, export_end_to_end, parse_quantize

__all__ = ["describe_export", "export", "export_end_to_end", "parse_quantize"]
