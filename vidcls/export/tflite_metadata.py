"""What a phone app needs to know, inside the .tflite file itself.

A TFLite model (the LiteRT flatbuffer schema, `ai_edge_litert.schema_py_generated`) has a
list of named metadata buffers; the converter already writes `min_runtime_version` and
`CONVERSION_METADATA` there. vidcls adds one named `vidcls`: UTF-8 JSON with the labels,
T, the frame interval and window, the input size and normalisation, the streams. Any
FlatBuffers reader of the TFLite schema reads it (on Android: `FlatBufferBuilder`-generated
`Model.metadata(i)`; in Python: `read_metadata` below), with no side file.

(tflite-support's `TFLITE_METADATA` table is not written: its Python package pins
protobuf < 4, which TensorFlow 2.21 cannot import beside.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError

METADATA_NAME = "vidcls"
FILE_IDENTIFIER = b"TFL3"


def with_metadata(model: bytes, values: dict) -> bytes:
    """`model` (TFLite bytes) with `values` as its `vidcls` metadata (replacing an earlier one)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    entries = [entry for entry in (tree.metadata or []) if _name(entry.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(values, sort_keys=True).encode(), np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = entries + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def read_metadata(path: str | Path) -> dict:
    """The `vidcls` metadata of a .tflite file.

    Raises:
        VidclsError: the file is not a TFLite model, or has no vidcls metadata.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    if data[4:8] != FILE_IDENTIFIER:
        raise VidclsError(f"{path} is not a TFLite model (expected the 'TFL3' identifier at byte 4; "
                          f"received {data[4:8]!r})")
    model = schema.Model.GetRootAs(data, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if _name(entry.Name()) == METADATA_NAME:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
    raise VidclsError(f"{path} carries no '{METADATA_NAME}' metadata: it was not written by vidcls export --streaming")


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
