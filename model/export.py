"""Export a checkpoint to the ONNX KV-cache contract:
    python -m model.export --ckpt model/checkpoints/final.pt --out models/default"""
import argparse
import json
import os

import torch

from .common import EOS, LEN_BASE, MAX_LEN_TOKEN, PAD, SEP, UNK, OnnxWrapper, load_checkpoint, write_vocab

OPSET = 17


def export(ckpt_path, out_dir, opset=OPSET, data=None):
    os.makedirs(out_dir, exist_ok=True)
    model, ck = load_checkpoint(ckpt_path)
    extra = dict(ck.get("extra", {}))
    if data and extra.get("val_loss") is None:
        # intermediate checkpoint: measure validation metrics on the training script's val split
        from .common import Tokenizer, read_pairs, split_train_val
        from .train import evaluate
        torch.set_num_threads(ck["args"].get("threads", 2))
        _, val = split_train_val(read_pairs(data), ck["args"]["val_size"], ck["args"]["seed"])
        vl, va = evaluate(model, Tokenizer(ck["vocab"]), val, torch.device("cpu"))
        model.eval()
        extra.update(val_loss=vl, val_char_acc=va, trained_steps=ck["step"])
        print(f"val_loss {vl:.4f} val_char_acc {va:.4f} at step {ck['step']}")
    cfg = model.cfg
    L, H, Dh = model.n_layer, model.n_head, model.d_head
    B, T, P = 2, 3, 4
    ids = torch.randint(40, cfg["vocab_size"], (B, T))
    pos = torch.arange(P, P + T)[None].repeat(B, 1)
    am = torch.ones(B, P + T, dtype=torch.long)
    pk = torch.randn(L, B, H, P, Dh)
    pv = torch.randn(L, B, H, P, Dh)
    onnx_path = os.path.join(out_dir, "model.onnx")
    wrapper = OnnxWrapper(model).eval()
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (ids, pos, am, pk, pv), onnx_path,
            input_names=["input_ids", "position_ids", "attention_mask", "past_key", "past_value"],
            output_names=["logits", "present_key", "present_value"],
            dynamic_axes={"input_ids": {0: "B", 1: "T"}, "position_ids": {0: "B", 1: "T"},
                          "attention_mask": {0: "B", 1: "S"},
                          "past_key": {1: "B", 3: "P"}, "past_value": {1: "B", 3: "P"},
                          "logits": {0: "B"}, "present_key": {1: "B", 3: "S"}, "present_value": {1: "B", 3: "S"}},
            opset_version=opset, do_constant_folding=False, dynamo=False)
    write_vocab(ck["vocab"], os.path.join(out_dir, "vocab.txt"))
    conf = {"n_layer": L, "n_head": H, "d_head": Dh, "d_model": cfg["d_model"], "vocab_size": cfg["vocab_size"],
            "max_positions": cfg["max_positions"], "pad_id": PAD, "unk_id": UNK, "sep_id": SEP, "eos_id": EOS,
            "len_token_base": LEN_BASE, "max_len_token": MAX_LEN_TOKEN, "onnx_opset": opset, "log_probs": True,
            "onnx_file": "model.onnx", "float_onnx_file": "model.onnx",
            "trained_steps": extra.get("trained_steps", ck.get("step")),
            "val_loss": extra.get("val_loss"), "val_char_acc": extra.get("val_char_acc"),
            "ff": cfg["ff"], "params": sum(p.numel() for p in model.parameters())}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(conf, f, indent=1)
    print(f"exported {onnx_path} ({os.path.getsize(onnx_path)/1e6:.2f} MB)")
    return onnx_path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="model/checkpoints/final.pt")
    ap.add_argument("--out", default="models/default")
    ap.add_argument("--opset", type=int, default=OPSET)
    ap.add_argument("--data", default=None, help="pairs.tsv; used to measure val metrics if the checkpoint lacks them")
    a = ap.parse_args()
    export(a.ckpt, a.out, a.opset, a.data)


if __name__ == "__main__":
    main()
