"""Grow the 横批 bank (common/data/hengpi.tsv) from the festive couplets' own 横批 and themes.

    python -m model.hengpi_bank            # appends the phrases the bank lacks; prints counts

Each festive row's 横批 becomes a phrase tagged with the row's theme characters, for the styles of the
file it came from (festive_more_a: classic+festive, _b: business, _c: family, _d: literary; the shared
festive_written.tsv: classic+festive). A phrase already in the bank gains the new tags and styles. So
a theme like 满月 or 书店 finds 横批 written for it (满月之喜, 书香满店) instead of one that merely
shares characters (月满西楼, 书香门第). Only four-CJK-character phrases are taken."""
import collections
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BANK = os.path.join(ROOT, "common/data/hengpi.tsv")
SOURCES = [("../shared/data/couplets/festive_written.tsv", "classic,festive"),
           ("model/data/festive_more_a.tsv", "classic,festive"),
           ("model/data/festive_more_b.tsv", "business"),
           ("model/data/festive_more_c.tsv", "family"),
           ("model/data/festive_more_d.tsv", "literary")]


def cjk(s):
    return [c for c in s if "\u4e00" <= c <= "\u9fff"]


def main():
    lines = open(BANK, encoding="utf-8").read().splitlines()
    header, rows = lines[0], lines[1:]
    bank = collections.OrderedDict()
    for r in rows:
        text, styles, tags = (r.split("\t") + ["", ""])[:3]
        bank[text] = [styles.split(",") if styles else [], tags.split(",") if tags else []]
    before = len(bank)
    for path, styles in SOURCES:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            next(f)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 4:
                    continue
                h, theme = parts[2].strip(), "".join(cjk(parts[3]))
                if len(h) != 4 or len(cjk(h)) != 4:
                    continue
                entry = bank.setdefault(h, [[], []])
                for s in styles.split(","):
                    if s not in entry[0]:
                        entry[0].append(s)
                if theme and theme not in entry[1]:
                    entry[1].append(theme)
    with open(BANK, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for text, (styles, tags) in bank.items():
            f.write(f"{text}\t{','.join(styles)}\t{','.join(tags)}\n")
    print(f"{BANK}: {before} -> {len(bank)} phrases")


if __name__ == "__main__":
    main()
