"""Train the couplet GPT.  Example:
    python -m model.train --data ../shared/data/couplets/pairs.tsv --out models/default --steps 3000
Seeded and reproducible (given the same thread count / device)."""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch

from .common import (GPT, N_SPECIAL, PAD, SEP, Tokenizer, build_vocab, encode_example, prompt_ids,
                     read_pairs, sample_theme, split_train_val, write_vocab)


def make_batch(tok, pairs, rng, themed=True):
    seqs, masks = [], []
    for u, l in pairs:
        th = sample_theme(u, l, rng) if themed else ""
        ids, m = encode_example(tok, u, l, th)
        seqs.append(ids)
        masks.append(m)
    T = max(len(s) for s in seqs)
    x = torch.full((len(seqs), T - 1), PAD, dtype=torch.long)
    y = torch.full((len(seqs), T - 1), PAD, dtype=torch.long)
    mk = torch.zeros((len(seqs), T - 1), dtype=torch.bool)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        n = len(s) - 1
        x[i, :n] = torch.tensor(s[:-1])
        y[i, :n] = torch.tensor(s[1:])
        mk[i, :n] = torch.tensor(m[1:], dtype=torch.bool)
    return x, y, mk


@torch.no_grad()
def evaluate(model, tok, val, device, bs=500):
    """Teacher-forced val loss (empty theme) + greedy char accuracy of lower given upper (empty theme)."""
    model.eval()
    tot_loss, tot_n = 0.0, 0
    rng = random.Random(0)
    for i in range(0, len(val), bs):
        x, y, mk = make_batch(tok, val[i:i + bs], rng, themed=False)
        x, y, mk = x.to(device), y.to(device), mk.to(device)
        loss, _ = model.loss(x, y, mk)
        n = int(mk.sum())
        tot_loss += float(loss) * n
        tot_n += n
    # greedy decoding, grouped by length (no padding needed), no KV cache (short sequences)
    by_len = {}
    for u, l in val:
        by_len.setdefault(len(u), []).append((u, l))
    correct = total = 0
    for n, group in by_len.items():
        for i in range(0, len(group), bs):
            g = group[i:i + bs]
            ids = torch.tensor([prompt_ids(tok, u) for u, _ in g], device=device)
            for _ in range(n):
                h = model.hidden_train(ids)[:, -1]
                logits = torch.nn.functional.linear(h, model.wte.weight)
                logits[:, :N_SPECIAL] = -1e9
                nxt = logits.argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], 1)
            gen = ids[:, -n:].tolist()
            for (u, l), row in zip(g, gen):
                ref = tok.enc(l)
                correct += sum(int(a == b) for a, b in zip(row, ref))
                total += n
    model.train()
    return tot_loss / tot_n, correct / total


def lr_at(step, total, warmup, base, min_ratio=0.05, time_frac=0.0):
    """Linear warmup then cosine decay; progress is the max of step progress and wall-clock progress
    (when a --time-budget is given), so the schedule always completes within the budget."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def save_ckpt(path, model, opt, step, args, vocab, extra=None):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "args": vars(args),
                "model_cfg": model.cfg, "vocab": vocab, "extra": extra or {}}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="models/default")
    ap.add_argument("--ckpt-dir", default="model/checkpoints")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--time-budget", type=float, default=0, help="minutes; stop early (and finish) if exceeded")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--ff", type=int, default=1024)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--max-positions", type=int, default=64)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU with AVX512-BF16 or GPU)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--ckpt-every-min", type=float, default=5.0)
    ap.add_argument("--measure", type=float, default=0, help="only measure throughput for this many seconds")
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--init-from", default="", help="checkpoint to load model weights from (fresh AdamW, "
                    "fresh LR schedule; architecture and vocab come from the checkpoint)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    t0 = time.time()
    pairs = read_pairs(args.data)
    train, val = split_train_val(pairs, args.val_size, args.seed)
    vocab = build_vocab(train)
    tok = Tokenizer(vocab)
    print(f"pairs={len(pairs)} train={len(train)} val={len(val)} vocab={len(vocab)} ({time.time()-t0:.1f}s)", flush=True)

    init = None
    if args.init_from:
        init = torch.load(args.init_from, map_location="cpu", weights_only=False)
        if init["vocab"] != vocab:
            raise SystemExit(f"--init-from: vocab of {args.init_from} differs from this data/seed split")
        cfg = init["model_cfg"]
        for k in ("d_model", "n_layer", "n_head", "ff", "max_positions", "dropout"):
            setattr(args, k.replace("-", "_"), cfg[k])
    model = GPT(len(vocab), args.d_model, args.n_layer, args.n_head, args.ff, args.max_positions, args.dropout).to(device)
    if init is not None:
        model.load_state_dict(init["model"])
        print(f"init-from {args.init_from} (step {init.get('step')}, extra {init.get('extra', {})})", flush=True)
        del init
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params={nparams}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": nodecay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    os.makedirs(args.ckpt_dir, exist_ok=True)

    rng = random.Random(args.seed + 1)
    order = list(range(len(train)))
    rng.shuffle(order)
    pos = 0
    epoch = 0
    tokens = 0
    t_start = time.time()
    last_ckpt = t_start
    model.train()
    step = 0
    stopped_early = False
    for step in range(args.steps):
        if pos + args.batch_size > len(order):
            rng.shuffle(order)
            pos = 0
            epoch += 1
        batch = [train[i] for i in order[pos:pos + args.batch_size]]
        pos += args.batch_size
        x, y, mk = make_batch(tok, batch, rng)
        x, y, mk = x.to(device), y.to(device), mk.to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.warmup, args.lr,
                            time_frac=(time.time() - t_start) / (args.time_budget * 60) if args.time_budget else 0.0)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss, acc = model.loss(x, y, mk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += x.numel()
        el = time.time() - t_start
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"step {step} ep {epoch + pos/len(train):.3f} loss {loss.item():.4f} acc {acc.item():.3f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} tok/s {tokens/el:.0f} seq/s {(step+1)*args.batch_size/el:.1f} "
                  f"elapsed {el/60:.1f}m", flush=True)
        if args.measure and el > args.measure:
            print(f"MEASURE steps={step+1} sec={el:.1f} steps/s={(step+1)/el:.3f} "
                  f"epoch_per_hour={(step+1)*args.batch_size/el*3600/len(train):.2f}", flush=True)
            return
        if args.eval_every and step > 0 and step % args.eval_every == 0:
            vl, va = evaluate(model, tok, val, device)
            print(f"EVAL step {step} val_loss {vl:.4f} val_char_acc {va:.4f}", flush=True)
        if time.time() - last_ckpt > args.ckpt_every_min * 60:
            save_ckpt(os.path.join(args.ckpt_dir, "last.pt"), model, opt, step + 1, args, vocab)
            last_ckpt = time.time()
        if args.time_budget and el > args.time_budget * 60:
            print(f"time budget reached at step {step}", flush=True)
            stopped_early = True
            break
    trained_steps = step + 1
    train_min = (time.time() - t_start) / 60
    vl, va = evaluate(model, tok, val, device)
    print(f"FINAL steps {trained_steps} val_loss {vl:.4f} val_char_acc {va:.4f} train_min {train_min:.1f}", flush=True)
    extra = {"trained_steps": trained_steps, "val_loss": vl, "val_char_acc": va, "train_minutes": train_min,
             "epochs": trained_steps * args.batch_size / len(train), "params": nparams,
             "stopped_early": stopped_early, "train_pairs": len(train), "val_pairs": len(val)}
    path = os.path.join(args.ckpt_dir, "final.pt")
    save_ckpt(path, model, opt, trained_steps, args, vocab, extra)
    with open(os.path.join(args.ckpt_dir, "final_metrics.json"), "w") as f:
        json.dump(extra, f, indent=1)
    if not args.no_export:
        from .export import export
        export(path, args.out)


if __name__ == "__main__":
    main()
