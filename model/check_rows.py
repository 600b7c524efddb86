"""Rule-check couplet rows (`upper lower hengpi theme`, TSV with header) before they are used for training.

The same checks the shared festive file passed, stated the way `common::rules::check` states them:
  * lines of CJK characters plus `，、；`, equal length (5..24 chars), punctuation at the same positions;
  * rule 2: no character of the upper line in the lower line, except mirrored 叠字;
  * rule 3: the upper line ends 仄, the lower line ends 平 (by common/data/tone_table.tsv);
  * 平仄相对: at the 2nd/4th/6th characters the tones (where known) are opposite;
  * rule 5: the 横批 is four CJK characters;
  * no duplicate of either line within the file or in the other festive files, none overlapping test.tsv
    or the evaluation references (model/eval/).
The Rust test `worker/tests/festive_data.rs` re-checks every kept row with `common::rules::check` itself.

    python -m model.check_rows NEW.tsv                 # report, exit 1 if any row fails
    python -m model.check_rows NEW.tsv --append model/data/festive_more.tsv   # append the rows that pass
"""
import argparse
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUNCT = "，、；"
TONES = {}
with open(os.path.join(ROOT, "common/data/tone_table.tsv"), encoding="utf-8") as f:
    next(f)
    for line in f:
        ch, t = line.rstrip("\n").split("\t")
        TONES[ch] = t


def is_cjk(c):
    return "\u4e00" <= c <= "\u9fff"


def check(upper, lower, hengpi):
    """Returns None when the row passes, else the reason."""
    if not upper or not lower:
        return "empty line"
    for c in upper + lower:
        if not is_cjk(c) and c not in PUNCT:
            return f"character {c!r} is not CJK or ，、；"
    if len(upper) != len(lower):
        return f"lengths differ ({len(upper)} vs {len(lower)})"
    n = sum(1 for c in upper if c not in PUNCT)
    if n < 5 or len(upper) > 24:
        return "length outside 5..24"
    for a, b in zip(upper, lower):
        if (a in PUNCT) != (b in PUNCT):
            return "punctuation not aligned"
    for i, c in enumerate(lower):
        if c in PUNCT:
            continue
        pu = [j for j, x in enumerate(upper) if x == c]
        pl = [j for j, x in enumerate(lower) if x == c]
        if pu and not (len(pu) >= 2 and pu == pl):
            return f"character {c} of the upper line reappears in the lower line"
    if TONES.get(upper[-1]) != "仄":
        return f"upper must end 仄 ({upper[-1]} is {TONES.get(upper[-1], 'unknown')})"
    if TONES.get(lower[-1]) != "平":
        return f"lower must end 平 ({lower[-1]} is {TONES.get(lower[-1], 'unknown')})"
    for i in (1, 3, 5):
        if i < len(upper) - 1 and upper[i] not in PUNCT:
            a, b = TONES.get(upper[i]), TONES.get(lower[i])
            if a and b and a == b:
                return f"平仄相对: position {i + 1} has {upper[i]}/{lower[i]} both {a}"
    if len(hengpi) != 4 or not all(is_cjk(c) for c in hengpi):
        return "横批 must be four CJK characters"
    return None


def read_rows(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        if not header.startswith("upper"):
            raise SystemExit(f"{path}: header must start with 'upper'")
        for ln, line in enumerate(f, 2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split("\t")]
            while len(parts) < 4:
                parts.append("")
            rows.append((ln, parts[0], parts[1], parts[2], parts[3]))
    return rows


def known_lines(exclude):
    """Lines already used: shared festive file, repo festive files, test split, eval references."""
    seen = set()
    paths = [os.path.join(ROOT, "../shared/data/couplets/festive_written.tsv"),
             os.path.join(ROOT, "../shared/data/couplets/test.tsv"),
             *sorted(glob.glob(os.path.join(ROOT, "model/data/festive_more*.tsv"))),
             os.path.join(ROOT, "model/eval/reference.tsv")]
    for p in paths:
        if os.path.abspath(p) == os.path.abspath(exclude) or not os.path.exists(p):
            continue
        with open(p, encoding="utf-8") as f:
            next(f)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                for x in parts[:2]:
                    if x:
                        seen.add(x)
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--append", help="append the passing, new rows to this TSV")
    args = ap.parse_args()
    rows = read_rows(args.file)
    seen = known_lines(args.file)
    ok, bad = [], 0
    for ln, u, l, h, t in rows:
        why = check(u, l, h)
        if why is None and (u in seen or l in seen):
            why = "duplicate of a line already used"
        if why:
            bad += 1
            print(f"line {ln}: FAIL {u} / {l} / {h}: {why}")
            continue
        seen.update((u, l))
        ok.append((u, l, h, t))
    print(f"{len(ok)} rows pass, {bad} fail")
    if args.append:
        new = not os.path.exists(args.append)
        with open(args.append, "a", encoding="utf-8") as f:
            if new:
                f.write("upper\tlower\thengpi\ttheme\n")
            for r in ok:
                f.write("\t".join(r) + "\n")
        print(f"appended {len(ok)} rows to {args.append}")
    sys.exit(1 if bad and not args.append else 0)


if __name__ == "__main__":
    main()
