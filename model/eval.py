"""Greedy char accuracy of the lower line given the upper, through the ONNX KV-cache graph (onnxruntime).
    python -m model.eval --model models/default --data ../shared/data/couplets/test.tsv --limit 2000
    python -m model.eval --model models/default --data ../shared/data/couplets/pairs.tsv --split val
Constraints: same length as upper, punctuation copied at the same positions, no punctuation elsewhere,
no special tokens / <unk>, and no character that occurs in the upper line."""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

from .common import N_SPECIAL, PUNCT, SEP, LEN_BASE, UNK, read_pairs, split_train_val

NEG = -1e30


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--split", choices=["all", "val"], default="all",
                    help="'val': rebuild the training script's validation split from pairs.tsv")
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--show", type=int, default=5)
    ap.add_argument("--onnx-file", default="", help="graph file in --model (default: config.json onnx_file)")
    a = ap.parse_args()

    cfg = json.load(open(os.path.join(a.model, "config.json")))
    vocab = [l.rstrip("\n") for l in open(os.path.join(a.model, "vocab.txt"), encoding="utf-8")]
    stoi = {t: i for i, t in enumerate(vocab)}
    V = len(vocab)
    punct_ids = np.array([stoi[p] for p in PUNCT])
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(os.path.join(a.model, a.onnx_file or cfg.get("onnx_file", "model.onnx")), so,
                                providers=["CPUExecutionProvider"])
    L, H, Dh = cfg["n_layer"], cfg["n_head"], cfg["d_head"]

    pairs = read_pairs(a.data)
    if a.split == "val":
        _, pairs = split_train_val(pairs, a.val_size, a.seed)
    pairs = pairs[:a.limit]
    enc = lambda s: [stoi.get(c, UNK) for c in s]

    correct = total = exact = 0
    shown = 0
    t0 = time.time()
    for i in range(0, len(pairs), a.batch_size):
        batch = pairs[i:i + a.batch_size]
        B = len(batch)
        prompts = [[LEN_BASE + len(u), SEP] + enc(u) + [SEP] for u, _ in batch]
        T0 = max(len(p) for p in prompts)
        ids = np.zeros((B, T0), np.int64)
        mask = np.zeros((B, T0), np.int64)
        for b, p in enumerate(prompts):
            ids[b, T0 - len(p):] = p
            mask[b, T0 - len(p):] = 1
        pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
        pk = np.zeros((L, B, H, 0, Dh), np.float32)
        pv = np.zeros((L, B, H, 0, Dh), np.float32)
        # static per-row ban mask: specials, punctuation, chars of the upper line
        ban = np.zeros((B, V), bool)
        ban[:, :N_SPECIAL] = True
        ban[:, punct_ids] = True
        for b, (u, _) in enumerate(batch):
            for c in u:
                if c in stoi:
                    ban[b, stoi[c]] = True
        maxn = max(len(u) for u, _ in batch)
        outs = [[] for _ in range(B)]
        logits, pk, pv = sess.run(None, {"input_ids": ids, "position_ids": pos, "attention_mask": mask,
                                         "past_key": pk, "past_value": pv})
        for step in range(maxn):
            nxt = np.full((B, 1), SEP, np.int64)
            lg = np.where(ban, NEG, logits)
            for b, (u, _) in enumerate(batch):
                if step >= len(u):
                    continue
                if u[step] in PUNCT:
                    t = stoi[u[step]]
                else:
                    t = int(np.argmax(lg[b]))
                nxt[b, 0] = t
                outs[b].append(t)
            if step == maxn - 1:
                break
            mask = np.concatenate([mask, np.ones((B, 1), np.int64)], 1)
            pos = pos[:, -1:] + 1
            logits, pk, pv = sess.run(None, {"input_ids": nxt, "position_ids": pos, "attention_mask": mask,
                                             "past_key": pk, "past_value": pv})
        for b, (u, l) in enumerate(batch):
            gen = "".join(vocab[t] for t in outs[b])
            c = sum(int(x == y) for x, y in zip(gen, l))
            correct += c
            total += len(l)
            exact += int(gen == l)
            if shown < a.show:
                print(f"  {u} | ref {l} | gen {gen}")
                shown += 1
    dt = time.time() - t0
    res = {"pairs": len(pairs), "char_acc": correct / total, "exact_line": exact / len(pairs), "seconds": dt}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
