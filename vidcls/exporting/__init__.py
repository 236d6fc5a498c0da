"""Export stage: SavedModel and TFLite, with parity checks in the LiteRT interpreter; the
streaming pair for phones and the loop that runs it (`vidcls stream`)."""

from vidcls.exporting.exporter import ExportReport, export, export_end_to_end, parse_quantize
from vidcls.exporting.stream import StreamRunner
from vidcls.exporting.streaming import export_streaming
from vidcls.exporting.tflite_metadata import read_metadata, read_standard_metadata

__all__ = ["ExportReport", "StreamRunner", "export", "export_end_to_end", "export_streaming", "parse_quantize",
           "read_metadata", "read_standard_metadata"]
