"""Export stage: SavedModel and TFLite, with parity checks in the LiteRT interpreter."""

from vidcls.export.exporter import export

__all__ = ["export"]
