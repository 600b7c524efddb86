"""Int8 dynamic quantisation of an exported model (onnxruntime's quantisation tools).

    python -m model.quantize models/default            # writes model.int8.onnx beside model.onnx
    python -m model.quantize models/default --install  # ... and makes the worker load it (config.json onnx_file)

Weights of the MatMul/Gemm layers become int8 (per-channel), activations are quantised on the fly;
the float graph stays as `float_onnx_file` (training warm-starts and verify_onnx read it). Check the
int8 graph against the float one before installing it: `python -m model.eval --onnx-file model.int8.onnx`
(char accuracy) and the blind judgement in model/eval/."""
import argparse
import json
import os

import tempfile

import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--install", action="store_true")
    a = ap.parse_args()
    cfg_path = os.path.join(a.model_dir, "config.json")
    cfg = json.load(open(cfg_path))
    src = os.path.join(a.model_dir, cfg.get("float_onnx_file", "model.onnx"))
    dst = os.path.join(a.model_dir, "model.int8.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        # The export keeps weight transposes as graph nodes (no constant folding); ORT's basic
        # optimisation folds them, so every MatMul sees a constant weight the quantiser can take.
        folded = os.path.join(tmp, "folded.onnx")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = folded
        ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        quantize_dynamic(folded, dst, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    print(f"{src} ({os.path.getsize(src)/1e6:.2f} MB) -> {dst} ({os.path.getsize(dst)/1e6:.2f} MB)")
    if a.install:
        cfg["onnx_file"] = "model.int8.onnx"
        cfg["float_onnx_file"] = os.path.basename(src)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        print(f"{cfg_path}: onnx_file = model.int8.onnx")


if __name__ == "__main__":
    main()
