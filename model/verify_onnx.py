"""Check the exported ONNX KV-cache graph against a full no-cache PyTorch forward.
    python -m model.verify_onnx models/default
PyTorch weights are rebuilt from the ONNX initializers, so only models/<name>/ is needed."""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from .common import GPT, SEP, LEN_BASE, N_SPECIAL

TOL = 1e-3
LOG_PROBS = True  # set from config.json: models exported before ranking give raw logits


def load_torch_from_onnx(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    # the float graph (an int8 model keeps its float original beside it)
    m = onnx.load(os.path.join(model_dir, cfg.get("float_onnx_file", "model.onnx")))
    sd = {}
    for init in m.graph.initializer:
        if init.name.startswith("m."):
            sd[init.name[2:]] = torch.from_numpy(numpy_helper.to_array(init).copy())
    ff = cfg.get("ff") or sd["blocks.0.fc1.weight"].shape[0]
    model = GPT(cfg["vocab_size"], cfg["d_model"], cfg["n_layer"], cfg["n_head"], ff, cfg["max_positions"], 0.0)
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, cfg


@torch.no_grad()
def ref_logits(model, seq):
    x = torch.tensor([seq])
    h = model.hidden_train(x)[:, -1]
    logits = torch.nn.functional.linear(h, model.wte.weight)
    if LOG_PROBS:
        logits = torch.log_softmax(logits, dim=-1)
    return logits[0].numpy()


def run_case(sess, model, cfg, prompts, steps=10, chunk=False):
    L, H, Dh = cfg["n_layer"], cfg["n_head"], cfg["d_head"]
    B = len(prompts)
    T0 = max(len(p) for p in prompts)
    ids = np.zeros((B, T0), np.int64)
    mask = np.zeros((B, T0), np.int64)
    for b, p in enumerate(prompts):
        ids[b, T0 - len(p):] = p
        mask[b, T0 - len(p):] = 1
    pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
    pk = np.zeros((L, B, H, 0, Dh), np.float32)
    pv = np.zeros((L, B, H, 0, Dh), np.float32)
    seqs = [list(p) for p in prompts]
    worst = 0.0
    logits, pk, pv = sess.run(None, {"input_ids": ids, "position_ids": pos, "attention_mask": mask,
                                     "past_key": pk, "past_value": pv})
    assert logits.shape == (B, cfg["vocab_size"]), logits.shape
    assert pk.shape == (L, B, H, T0, Dh), pk.shape
    for step in range(steps + 1):
        for b in range(B):
            d = float(np.abs(logits[b] - ref_logits(model, seqs[b])).max())
            worst = max(worst, d)
            assert np.isfinite(logits[b]).all()
        if step == steps:
            break
        n_new = 3 if (chunk and step == 0) else 1
        new = np.zeros((B, n_new), np.int64)
        for b in range(B):
            for k in range(n_new):
                # greedy over character tokens, with a deterministic perturbation to vary the path
                t = int(np.argmax(logits[b][N_SPECIAL:])) + N_SPECIAL if k == 0 else N_SPECIAL + 7 * (b + 1) + k
                new[b, k] = t
                seqs[b].append(t)
        mask = np.concatenate([mask, np.ones((B, n_new), np.int64)], 1)
        pos = (np.cumsum(mask, 1) - 1)[:, -n_new:]
        P = pk.shape[3]
        logits, pk2, pv2 = sess.run(None, {"input_ids": new, "position_ids": pos, "attention_mask": mask,
                                           "past_key": pk, "past_value": pv})
        assert pk2.shape == (L, B, H, P + n_new, Dh), pk2.shape
        pk, pv = pk2, pv2
    return worst


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/default"
    global LOG_PROBS
    model, cfg = load_torch_from_onnx(model_dir)
    LOG_PROBS = bool(cfg.get("log_probs"))
    vocab = [l.rstrip("\n") for l in open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8")]
    assert len(vocab) == cfg["vocab_size"], (len(vocab), cfg["vocab_size"])
    assert vocab[:4] == ["<pad>", "<unk>", "<sep>", "<eos>"] and vocab[cfg["len_token_base"] + 1] == "<len_1>"
    assert vocab[cfg["len_token_base"] + 32] == "<len_32>"
    sess = ort.InferenceSession(os.path.join(model_dir, cfg.get("float_onnx_file", "model.onnx")), providers=["CPUExecutionProvider"])
    stoi = {t: i for i, t in enumerate(vocab)}
    enc = lambda s: [stoi.get(c, 1) for c in s]
    p1 = [LEN_BASE + 7, *enc("春"), SEP, *enc("天增岁月人增寿"), SEP]
    p2 = [LEN_BASE + 5, SEP, *enc("白日依山尽"), SEP]
    p3 = [LEN_BASE + 7, *enc("新春福"), SEP, *enc("一帆风顺年年好"), SEP, *enc("万事")]
    results = {}
    results["batch3"] = run_case(sess, model, cfg, [p1, p2, p3])
    results["batch1"] = run_case(sess, model, cfg, [p2])
    results["batch3_chunked"] = run_case(sess, model, cfg, [p3, p1, p2], chunk=True)
    ok = True
    for k, v in results.items():
        flag = "OK" if v < TOL else "FAIL"
        ok &= v < TOL
        print(f"{k}: max |onnx - torch| = {v:.2e}  {flag}")
    size = sum(os.path.getsize(os.path.join(model_dir, f)) for f in ("model.onnx", "vocab.txt", "config.json"))
    print(f"total size {size/1e6:.2f} MB")
    if not ok:
        sys.exit(1)
    print("VERIFY PASSED")


if __name__ == "__main__":
    main()
