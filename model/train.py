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
from .festive import festive_theme, load_festive


def make_batch(tok, pairs, rng, themed=True):
    seqs, masks = [], []
    for item in pairs:
        u, l = item[0], item[1]
        if len(item) > 2:   # festive row: its real theme keyword (and 横批 characters) condition it
            th = festive_theme(item, rng) if themed else item[2]
        else:
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


def save_ckpt(path, model, opt, step, args, vocab, extra=None, state=None):
    """`state` carries what --resume needs to continue exactly: data order and position, RNG states,
    wall-clock minutes trained so far."""
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "args": vars(args),
                "model_cfg": model.cfg, "vocab": vocab, "extra": extra or {}, "state": state or {}}, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def festive_val_loss(model, tok, fval, device):
    """Teacher-forced loss on the held-out festive split, conditioned on each row's theme keyword."""
    if not fval:
        return float("nan")
    model.eval()
    x, y, mk = make_batch(tok, fval, random.Random(0), themed=False)
    loss, _ = model.loss(x.to(device), y.to(device), mk.to(device))
    model.train()
    return float(loss)


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
    ap.add_argument("--init-onnx", default="", help="model dir (model.onnx + vocab.txt + config.json) to "
                    "warm-start from: weights are read back from the ONNX initializers, the vocab is kept")
    ap.add_argument("--festive", nargs="*", default=[], help="festive TSVs (upper lower hengpi theme); 10%% of "
                    "rows (crc32 of the upper line) are held out as the festive validation split")
    ap.add_argument("--festive-frac", type=float, default=0.2, help="share of each batch drawn from festive rows")
    ap.add_argument("--resume", action="store_true", help="continue from <ckpt-dir>/last.pt if it exists "
                    "(model, AdamW, step, data order, RNG, minutes trained)")
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
    if args.init_onnx:
        from .common import read_vocab
        vocab = read_vocab(os.path.join(args.init_onnx, "vocab.txt"))
    else:
        vocab = build_vocab(train)
    tok = Tokenizer(vocab)
    ftrain, fval = load_festive(args.festive)
    print(f"festive train={len(ftrain)} val={len(fval)} frac={args.festive_frac}", flush=True)
    print(f"pairs={len(pairs)} train={len(train)} val={len(val)} vocab={len(vocab)} ({time.time()-t0:.1f}s)", flush=True)

    init = None
    if args.init_from:
        init = torch.load(args.init_from, map_location="cpu", weights_only=False)
        if init["vocab"] != vocab:
            raise SystemExit(f"--init-from: vocab of {args.init_from} differs from this data/seed split")
        cfg = init["model_cfg"]
        for k in ("d_model", "n_layer", "n_head", "ff", "max_positions", "dropout"):
            setattr(args, k.replace("-", "_"), cfg[k])
    if args.init_onnx:
        from .verify_onnx import load_torch_from_onnx
        m0, cfg0 = load_torch_from_onnx(args.init_onnx)
        args.d_model, args.n_layer, args.n_head, args.ff, args.max_positions = (
            cfg0["d_model"], cfg0["n_layer"], cfg0["n_head"], m0.cfg["ff"], cfg0["max_positions"])
        init = {"model": m0.state_dict(), "step": cfg0.get("trained_steps"), "extra": {"onnx": args.init_onnx}}
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
    start_step, prior_min = 0, 0.0
    last_path = os.path.join(args.ckpt_dir, "last.pt")
    if args.resume and os.path.exists(last_path):
        ck = torch.load(last_path, map_location="cpu", weights_only=False)
        if ck["vocab"] != vocab:
            raise SystemExit("--resume: last.pt was trained with another vocabulary")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        st = ck.get("state") or {}
        start_step = ck["step"]
        order, pos, epoch = st.get("order", order), st.get("pos", 0), st.get("epoch", 0)
        if "rng" in st:
            rng.setstate(st["rng"])
            torch.set_rng_state(st["torch_rng"])
        prior_min = st.get("minutes", 0.0)
        print(f"resumed from {last_path} at step {start_step} ({prior_min:.1f} min trained)", flush=True)
        del ck

    def state():
        return {"order": order, "pos": pos, "epoch": epoch, "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(), "minutes": prior_min + (time.time() - t_start) / 60}

    n_fest = int(round(args.batch_size * args.festive_frac)) if ftrain else 0
    model.train()
    step = start_step
    stopped_early = False
    for step in range(start_step, args.steps):
        if pos + args.batch_size - n_fest > len(order):
            rng.shuffle(order)
            pos = 0
            epoch += 1
        batch = [train[i] for i in order[pos:pos + args.batch_size - n_fest]]
        batch += [ftrain[rng.randrange(len(ftrain))] for _ in range(n_fest)]
        pos += args.batch_size - n_fest
        x, y, mk = make_batch(tok, batch, rng)
        x, y, mk = x.to(device), y.to(device), mk.to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.warmup, args.lr,
                            time_frac=(prior_min * 60 + time.time() - t_start) / (args.time_budget * 60)
                            if args.time_budget else 0.0)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss, acc = model.loss(x, y, mk)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += x.numel()
        el = time.time() - t_start
        el_total = el + prior_min * 60
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"step {step} ep {epoch + pos/len(train):.3f} loss {loss.item():.4f} acc {acc.item():.3f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} tok/s {tokens/el:.0f} seq/s {(step+1-start_step)*args.batch_size/el:.1f} "
                  f"elapsed {el_total/60:.1f}m", flush=True)
        if args.measure and el > args.measure:
            print(f"MEASURE steps={step+1} sec={el:.1f} steps/s={(step+1)/el:.3f} "
                  f"epoch_per_hour={(step+1)*args.batch_size/el*3600/len(train):.2f}", flush=True)
            return
        if args.eval_every and step > 0 and step % args.eval_every == 0:
            vl, va = evaluate(model, tok, val, device)
            fl = festive_val_loss(model, tok, fval, device)
            print(f"EVAL step {step} val_loss {vl:.4f} val_char_acc {va:.4f} festive_val_loss {fl:.4f}", flush=True)
        if time.time() - last_ckpt > args.ckpt_every_min * 60:
            save_ckpt(last_path, model, opt, step + 1, args, vocab, state=state())
            last_ckpt = time.time()
        if args.time_budget and el_total > args.time_budget * 60:
            print(f"time budget reached at step {step}", flush=True)
            stopped_early = True
            break
    trained_steps = step + 1
    save_ckpt(last_path, model, opt, trained_steps, args, vocab, state=state())
    train_min = prior_min + (time.time() - t_start) / 60
    vl, va = evaluate(model, tok, val, device)
    fl = festive_val_loss(model, tok, fval, device)
    print(f"FINAL steps {trained_steps} val_loss {vl:.4f} val_char_acc {va:.4f} festive_val_loss {fl:.4f} "
          f"train_min {train_min:.1f}", flush=True)
    extra = {"trained_steps": trained_steps, "val_loss": vl, "val_char_acc": va, "train_minutes": train_min,
             "festive_val_loss": fl, "festive_train": len(ftrain), "festive_val": len(fval),
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
