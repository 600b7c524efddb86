"""Festive couplets for training: loading, the held-out festive validation split, and theme sampling.

Rows are `upper lower hengpi theme` (the shared `festive_written.tsv` and the project's own
`model/data/festive_more*.tsv`). The validation split is fixed by the row's upper line
(crc32 % 10 == 0, i.e. 10 %), so it stays the same as the files grow and is never trained on."""
import zlib

from .common import MAX_LEN_TOKEN, PUNCT, sample_theme


def is_festive_val(upper):
    return zlib.crc32(upper.encode("utf-8")) % 10 == 0


def read_festive(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        assert header.startswith("upper"), (path, header)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            u, l = parts[0].strip(), parts[1].strip()
            h = parts[2].strip() if len(parts) > 2 else ""
            t = parts[3].strip() if len(parts) > 3 else ""
            if not u or len(u) != len(l) or len(u) > MAX_LEN_TOKEN:
                continue
            rows.append((u, l, theme_chars(t), h))
    return rows


def theme_chars(t, cap=4):
    """Distinct CJK characters of a theme keyword, in order, at most `cap` (the service's limit)."""
    out = []
    for c in t:
        if "\u4e00" <= c <= "\u9fff" and c not in out:
            out.append(c)
    return "".join(out[:cap])


def load_festive(paths):
    """(train, val) lists of (upper, lower, theme, hengpi); duplicates of an upper line are dropped."""
    seen, train, val = set(), [], []
    for p in paths:
        for row in read_festive(p):
            if row[0] in seen:
                continue
            seen.add(row[0])
            (val if is_festive_val(row[0]) else train).append(row)
    return train, val


def festive_theme(row, rng):
    """A training theme for a festive row: mostly its real keyword (what users type), sometimes with a
    character of the lines added, sometimes a pseudo-theme from the lines, sometimes none."""
    u, l, t, _h = row
    r = rng.random()
    if r < 0.15 or (not t and r < 0.6):
        return ""
    if r < 0.65 and t:
        return t
    if r < 0.85 and t:
        pool = [c for c in u + l if c not in PUNCT and c not in t]
        k = min(4 - len(t), rng.randint(1, 2))
        extra = rng.sample(pool, k) if k > 0 and len(pool) >= k else []
        units = list(t) + extra
        return "".join(units)
    return sample_theme(u, l, rng)
