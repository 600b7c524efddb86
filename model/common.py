"""Shared pieces: vocabulary, data encoding, and the GPT model (training + KV-cache inference paths)."""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, UNK, SEP, EOS = 0, 1, 2, 3
LEN_BASE = 3  # <len_N> has id LEN_BASE + N
MAX_LEN_TOKEN = 32
N_SPECIAL = 4 + MAX_LEN_TOKEN  # ids 0..35
PUNCT = "，、；"
NEG = -1e4


# ----------------------------------------------------------------------------- data

def read_pairs(path):
    """Read a TSV with header (upper, lower, ...). Returns list of (upper, lower)."""
    out = []
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        assert header.startswith("upper"), header
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            u, l = parts[0], parts[1]
            if not u or len(u) != len(l) or len(u) > MAX_LEN_TOKEN:
                continue
            out.append((u, l))
    return out


def split_train_val(pairs, val_size, seed):
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    val = [pairs[i] for i in sorted(idx[:val_size])]
    train = [pairs[i] for i in sorted(idx[val_size:])]
    return train, val


def build_vocab(train_pairs):
    from collections import Counter
    c = Counter()
    for u, l in train_pairs:
        c.update(u)
        c.update(l)
    chars = [ch for ch, n in c.items() if n >= 2]
    for p in PUNCT:
        if p not in chars:
            chars.append(p)
    chars.sort(key=lambda ch: (-c.get(ch, 0), ord(ch)))
    toks = ["<pad>", "<unk>", "<sep>", "<eos>"] + [f"<len_{i}>" for i in range(1, MAX_LEN_TOKEN + 1)] + chars
    return toks


def write_vocab(toks, path):
    with open(path, "w", encoding="utf-8") as f:
        for t in toks:
            f.write(t + "\n")


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


class Tokenizer:
    def __init__(self, toks):
        self.toks = toks
        self.stoi = {t: i for i, t in enumerate(toks)}
        self.punct_ids = [self.stoi[p] for p in PUNCT]

    def enc(self, s):
        return [self.stoi.get(ch, UNK) for ch in s]

    def dec(self, ids):
        return "".join(self.toks[i] if i >= N_SPECIAL else ("□" if i == UNK else "") for i in ids)

    def __len__(self):
        return len(self.toks)


def sample_theme(u, l, rng):
    """Pseudo-theme: 25% empty; else 1-4 chars taken from the pair (a 2-char word and/or single chars)."""
    if rng.random() < 0.25:
        return ""
    k = rng.randint(1, 4)
    units = []
    used = set()
    if k >= 2 and rng.random() < 0.6:
        line = u if rng.random() < 0.5 else l
        cands = [i for i in range(len(line) - 1) if line[i] not in PUNCT and line[i + 1] not in PUNCT]
        if cands:
            i = rng.choice(cands)
            w = line[i:i + 2]
            units.append(w)
            used.update(w)
    pool = [ch for ch in u + l if ch not in PUNCT and ch not in used]
    rng.shuffle(pool)
    for ch in pool:
        if sum(len(x) for x in units) >= k:
            break
        if ch in used:
            continue
        units.append(ch)
        used.add(ch)
    rng.shuffle(units)
    return "".join(units)


def encode_example(tok, u, l, theme):
    """Returns (ids, loss_mask) lists. Loss on upper, second <sep>, lower, <eos>."""
    n = len(u)
    th = tok.enc(theme)
    uu = tok.enc(u)
    ll = tok.enc(l)
    ids = [LEN_BASE + n] + th + [SEP] + uu + [SEP] + ll + [EOS]
    pre = 1 + len(th) + 1
    m = [0] * pre + [1] * (len(ids) - pre)
    return ids, m


def prompt_ids(tok, u, theme=""):
    return [LEN_BASE + len(u)] + tok.enc(theme) + [SEP] + tok.enc(u) + [SEP]


# ----------------------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, d, h, ff, dropout):
        super().__init__()
        self.h = h
        self.dh = d // h
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)
        self.drop = nn.Dropout(dropout)
        self.attn_p = dropout

    def forward(self, x, past_k=None, past_v=None, bias=None):
        B, T = x.shape[0], x.shape[1]
        qkv = self.qkv(self.ln1(x))
        q, k, v = qkv.split(self.h * self.dh, dim=2)
        q = q.view(B, T, self.h, self.dh).transpose(1, 2)
        k = k.view(B, T, self.h, self.dh).transpose(1, 2)
        v = v.view(B, T, self.h, self.dh).transpose(1, 2)
        if bias is None:
            # training path: plain causal attention (sequences right-padded, pads never attended by real tokens)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.attn_p if self.training else 0.0)
            pk = pv = None
        else:
            if past_k is not None:
                k = torch.cat([past_k, k], dim=2)
                v = torch.cat([past_v, v], dim=2)
            pk, pv = k, v
            att = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dh)) + bias
            att = torch.softmax(att, dim=-1)
            y = torch.matmul(att, v)
        y = y.transpose(1, 2).reshape(B, T, self.h * self.dh)
        x = x + self.drop(self.proj(y))
        x = x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))
        return x, pk, pv


class GPT(nn.Module):
    def __init__(self, vocab_size, d_model=256, n_layer=4, n_head=4, ff=1024, max_positions=64, dropout=0.1):
        super().__init__()
        self.cfg = dict(vocab_size=vocab_size, d_model=d_model, n_layer=n_layer, n_head=n_head, ff=ff,
                        max_positions=max_positions, dropout=dropout)
        self.n_layer, self.n_head, self.d_head = n_layer, n_head, d_model // n_head
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(max_positions, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(d_model, n_head, ff, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.apply(self._init)
        for b in self.blocks:
            nn.init.normal_(b.proj.weight, std=0.02 / math.sqrt(2 * n_layer))
            nn.init.normal_(b.fc2.weight, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def hidden_train(self, idx):
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos)[None])
        for b in self.blocks:
            x, _, _ = b(x)
        return self.ln_f(x)

    def loss(self, idx, targets, mask):
        """idx/targets/mask [B,T]; mask marks target positions that count."""
        h = self.hidden_train(idx)
        sel = mask.bool()
        logits = F.linear(h[sel], self.wte.weight)
        tgt = targets[sel]
        loss = F.cross_entropy(logits, tgt)
        acc = (logits.argmax(-1) == tgt).float().mean()
        return loss, acc

    def forward_cache(self, input_ids, position_ids, attention_mask, past_key, past_value):
        """KV-cache inference path (the ONNX contract).
        input_ids/position_ids [B,T]; attention_mask [B,P+T]; past_* [L,B,H,P,Dh].
        Returns log-probabilities (log-softmax of the logits) of the last position [B,V], present_key/value [L,B,H,P+T,Dh]."""
        # key index j in [0,S), query index t -> absolute P+t, computed from tensors only (export-friendly)
        ones_k = torch.ones_like(attention_mask)
        k_idx = torch.cumsum(ones_k, dim=1) - 1                      # [B,S] = j
        ones_q = torch.ones_like(input_ids)
        q_idx = k_idx[:, -1:] + torch.cumsum(ones_q, dim=1) - ones_q.sum(dim=1, keepdim=True)  # [B,T] = P+t
        allowed = (k_idx[:, None, :] <= q_idx[:, :, None]) & (attention_mask[:, None, :] > 0)  # [B,T,S]
        bias = torch.where(allowed, torch.zeros((), dtype=torch.float32),
                           torch.full((), NEG, dtype=torch.float32))[:, None, :, :]  # [B,1,T,S]
        x = self.wte(input_ids) + self.wpe(position_ids)
        pks, pvs = [], []
        for i, b in enumerate(self.blocks):
            x, pk, pv = b(x, past_key[i], past_value[i], bias)
            pks.append(pk)
            pvs.append(pv)
        h = self.ln_f(x[:, -1, :])
        # log-softmax in the graph: the decoder samples from it exactly as from logits and reads
        # each written character's log-probability off it for ranking (no normalising in Rust)
        logits = F.log_softmax(F.linear(h, self.wte.weight), dim=-1)
        return logits, torch.stack(pks, 0), torch.stack(pvs, 0)

    def empty_past(self, B):
        z = torch.zeros(self.n_layer, B, self.n_head, 0, self.d_head)
        return z, z.clone()


class OnnxWrapper(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, position_ids, attention_mask, past_key, past_value):
        return self.m.forward_cache(input_ids, position_ids, attention_mask, past_key, past_value)


def load_checkpoint(path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    m = GPT(**ck["model_cfg"])
    m.load_state_dict(ck["model"])
    m.eval()
    return m, ck
