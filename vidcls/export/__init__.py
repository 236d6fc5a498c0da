"""Export stage: SavedModel and TFLite, with parity checks in the LiteRT interpreter."""

from vidcls.export.exporter import ExportReport, export, export_end_to_end, parse_quantize

__all__ = ["ExportReport", "export", "export_end_to_end", "parse_quantize"]
