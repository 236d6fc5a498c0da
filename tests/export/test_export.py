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
    assert metadata["inputs"]["features"]["shape"] == [1, 8, 2048] and metadata["inputs"]["mask"]["shape"] == [1, 8]
    assert metadata["backbone"] == "resnet50"

    # The file on disk runs on its own in the LiteRT interpreter, inputs by name.
    runner = Interpreter(model_path=str(out / variant["path"])).get_signature_runner()
    features = np.random.default_rng(0).normal(size=(1, 8, 2048)).astype(np.float32)
    full = next(iter(runner(features=features, mask=np.ones((1, 8), np.float32)).values()))
    assert full.shape == (1, 4) and abs(full.sum() - 1) < 1e-5
    mask = np.array([[1, 1, 1, 1, 1, 0, 0, 0]], np.float32)  # a short clip: junk in masked frames is ignored
    junk = features.copy()
    junk[0, 5:] = 1e3
    np.testing.assert_allclose(next(iter(runner(features=junk, mask=mask).values())),
                               next(iter(runner(features=features, mask=mask).values())), atol=1e-6)
