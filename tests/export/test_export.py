import json

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from vidcls.export import export


def test_tflite_matches_keras_with_builtin_ops_only(trained_run):
    report = export(trained_run)
    out = trained_run / "export"
    assert json.loads((out / "export_report.json").read_text()) == report
    variant = report["variants"][0]
    for key in ("name", "path", "size_bytes", "ops", "top1_agreement", "max_abs_diff", "latency_ms"):
        assert key in variant, key
    assert variant["top1_agreement"] == 1.0 and variant["max_abs_diff"] < 1e-4
    assert not [op for op in variant["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    assert "FULLY_CONNECTED" in variant["ops"]
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert (out / "labels.txt").read_text().split() == json.loads((trained_run / "labels.json").read_text())
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["input_shape"] == [1, 8, 2048] and metadata["backbone"] == "resnet50"

    # The file on disk runs on its own in the LiteRT interpreter: probabilities out.
    interpreter = Interpreter(model_path=str(out / variant["path"]))
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(input_detail["index"], np.random.default_rng(0).normal(size=(1, 8, 2048)).astype(np.float32))
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert probabilities.shape == (1, 4) and abs(probabilities.sum() - 1) < 1e-5
