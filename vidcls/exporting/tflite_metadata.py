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
    return _with_buffer(model, METADATA_NAME, json.dumps(values).encode())


def _with_buffer(model: bytes, name: str, payload: bytes) -> bytes:
    """`model` with a metadata buffer `name` holding `payload` (replacing one of that name)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    entries = [entry for entry in (tree.metadata or []) if _name(entry.name) != name]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
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


# The standard TFLite model metadata (tflite-support's metadata_schema.fbs, "M001"): what
# generic tooling reads (Android's MetadataExtractor, tflite_support.metadata): a
# `TFLITE_METADATA` buffer describing each input and output, and the label files packed
# as a zip archive appended to the model. Field slots below are the schema's, in order.
STANDARD_NAME = "TFLITE_METADATA"
_MODEL_METADATA_SLOTS = 8  # name, description, version, subgraph_metadata, author, license, associated_files, min_parser_version
_SUBGRAPH_SLOTS = 10  # name, description, input_tensor_metadata, output_tensor_metadata, ...
_TENSOR_SLOTS = 7  # name, description, dimension_names, content, process_units, stats, associated_files
_FILE_SLOTS = 5  # name, description, type, locale, version
_TENSOR_AXIS_LABELS = 2
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_RGB = 1


def with_standard_metadata(model: bytes, name: str, description: str, inputs: dict[str, dict],
                           outputs: dict[str, dict]) -> bytes:
    """`model` with a `TFLITE_METADATA` buffer and its label files appended as a zip.

    `inputs` / `outputs`: `{signature name: {"description", "image_size" (an RGB image
    input), "labels" (an output's class names: written as `labels_file`)}}`, matched to
    the subgraph's tensors by the model's signature.
    """
    import io
    import zipfile

    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.Model.GetRootAs(model, 0)
    signature = tree.SignatureDefs(0)
    by_tensor = {}
    for index in range(signature.InputsLength()):
        by_tensor[signature.Inputs(index).TensorIndex()] = _name(signature.Inputs(index).Name())
    for index in range(signature.OutputsLength()):
        by_tensor[signature.Outputs(index).TensorIndex()] = _name(signature.Outputs(index).Name())
    subgraph = tree.Subgraphs(signature.SubgraphIndex())
    input_names = [by_tensor[subgraph.Inputs(i)] for i in range(subgraph.InputsLength())]
    output_names = [by_tensor[subgraph.Outputs(i)] for i in range(subgraph.OutputsLength())]
    if sorted(input_names) != sorted(inputs) or sorted(output_names) != sorted(outputs):
        raise VidclsError(f"Expected metadata for the model's inputs {input_names} and outputs {output_names}; "
                          f"received {sorted(inputs)} and {sorted(outputs)}")
    builder = flatbuffers.Builder(4096)
    tensors = {side: [_tensor(builder, tensor, spec[tensor]) for tensor in names]
               for side, names, spec in (("in", input_names, inputs), ("out", output_names, outputs))}
    subgraph_name = builder.CreateString(name)
    vectors = {side: _offsets(builder, offsets) for side, offsets in tensors.items()}
    builder.StartObject(_SUBGRAPH_SLOTS)
    builder.PrependUOffsetTRelativeSlot(0, subgraph_name, 0)
    builder.PrependUOffsetTRelativeSlot(2, vectors["in"], 0)
    builder.PrependUOffsetTRelativeSlot(3, vectors["out"], 0)
    subgraph_metadata = builder.EndObject()
    strings = [builder.CreateString(text) for text in (name, description, "vidcls", "1.0.0")]
    subgraphs = _offsets(builder, [subgraph_metadata])
    builder.StartObject(_MODEL_METADATA_SLOTS)
    for slot, offset in ((0, strings[0]), (1, strings[1]), (3, subgraphs), (4, strings[2]), (7, strings[3])):
        builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"M001")
    packed = _with_buffer(model, STANDARD_NAME, bytes(builder.Output()))
    archive = io.BytesIO(packed)
    with zipfile.ZipFile(archive, "a") as files:
        for spec in outputs.values():
            if "labels" in spec:
                files.writestr(spec["labels_file"], "".join(f"{label}\n" for label in spec["labels"]))
    return archive.getvalue()


def _tensor(builder, name: str, spec: dict) -> int:
    text = [builder.CreateString(name), builder.CreateString(spec.get("description", ""))]
    files = None
    if "labels" in spec:
        file_name, file_text = builder.CreateString(spec["labels_file"]), builder.CreateString(
            "the class of each probability, one per line")
        builder.StartObject(_FILE_SLOTS)
        builder.PrependUOffsetTRelativeSlot(0, file_name, 0)
        builder.PrependUOffsetTRelativeSlot(1, file_text, 0)
        builder.PrependInt8Slot(2, _TENSOR_AXIS_LABELS, 0)
        files = _offsets(builder, [builder.EndObject()])
    if "image_size" in spec:
        builder.StartObject(2)  # ImageSize: width, height
        builder.PrependUint32Slot(0, spec["image_size"], 0)
        builder.PrependUint32Slot(1, spec["image_size"], 0)
        size = builder.EndObject()
        builder.StartObject(2)  # ImageProperties: color_space, default_size
        builder.PrependInt8Slot(0, _RGB, 0)
        builder.PrependUOffsetTRelativeSlot(1, size, 0)
        properties, kind = builder.EndObject(), _IMAGE_PROPERTIES
    else:
        builder.StartObject(0)  # FeatureProperties
        properties, kind = builder.EndObject(), _FEATURE_PROPERTIES
    builder.StartObject(3)  # Content: content_properties_type, content_properties, range
    builder.PrependUint8Slot(0, kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, properties, 0)
    content = builder.EndObject()
    builder.StartObject(_TENSOR_SLOTS)
    builder.PrependUOffsetTRelativeSlot(0, text[0], 0)
    builder.PrependUOffsetTRelativeSlot(1, text[1], 0)
    builder.PrependUOffsetTRelativeSlot(3, content, 0)
    if files is not None:
        builder.PrependUOffsetTRelativeSlot(6, files, 0)
    return builder.EndObject()


def _offsets(builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def read_standard_metadata(path: str | Path) -> dict:
    """The standard metadata of a .tflite file, as generic tooling sees it: `{"name",
    "inputs": [tensor names], "outputs": [...], "files": {name: text}}` (the files from the
    zip archive appended to the model).

    Raises:
        VidclsError: the file has no `TFLITE_METADATA` buffer.
    """
    import io
    import zipfile

    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import encode, number_types, table

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    found = [model.Metadata(i) for i in range(model.MetadataLength()) if _name(model.Metadata(i).Name()) == STANDARD_NAME]
    if not found:
        raise VidclsError(f"{path} carries no {STANDARD_NAME} buffer (standard TFLite model metadata)")
    buffer = model.Buffers(found[0].Buffer()).DataAsNumpy().tobytes()
    if buffer[4:8] != b"M001":
        raise VidclsError(f"{path}: the {STANDARD_NAME} buffer is not model metadata (identifier {buffer[4:8]!r})")

    def root(buf, position):
        return table.Table(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, position) + position)

    def field(tab, slot):
        offset = tab.Offset(4 + 2 * slot)
        return offset + tab.Pos if offset else None

    def tables(tab, slot):
        start = field(tab, slot)
        if start is None:
            return []
        vector, length = tab.Vector(start - tab.Pos), tab.VectorLen(start - tab.Pos)
        return [table.Table(tab.Bytes, tab.Indirect(vector + 4 * i)) for i in range(length)]

    metadata = root(buffer, 0)
    subgraph = tables(metadata, 3)[0]
    files = {}
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {name: archive.read(name).decode() for name in archive.namelist()}
    return {"name": metadata.String(field(metadata, 0)).decode(),
            "inputs": [tensor.String(field(tensor, 0)).decode() for tensor in tables(subgraph, 2)],
            "outputs": [tensor.String(field(tensor, 0)).decode() for tensor in tables(subgraph, 3)],
            "files": files}
