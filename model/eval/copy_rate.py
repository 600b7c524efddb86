"""Copy rate: the share of generated lines found verbatim in any training file.

    python3 model/eval/copy_rate.py outputs/after.tsv [samples_after.tsv ...]

Training files: ../shared/data/couplets/pairs.tsv, festive_written.tsv and model/data/festive_more*.tsv
(both columns). Counted lines: every lower line, and the upper line where the model wrote it (theme
inputs and the showcase samples; an upper input's upper line is the user's)."""
import csv
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "../shared/data/couplets")


def training_lines():
    lines = set()
    paths = [os.path.join(SHARED, "pairs.tsv"), os.path.join(SHARED, "festive_written.tsv"),
             *glob.glob(os.path.join(ROOT, "model/data/festive_more*.tsv"))]
    for p in paths:
        with open(p, encoding="utf-8") as f:
            next(f)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                lines.update(x for x in parts[:2] if x)
    return lines


def main():
    known = training_lines()
    kinds = {}
    with open(os.path.join(HERE, "inputs.tsv"), encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            kinds[r["id"]] = r["kind"]
    for path in sys.argv[1:]:
        path = path if os.path.isabs(path) or os.path.exists(path) else os.path.join(HERE, path)
        total = copied = 0
        examples = []
        with open(path, encoding="utf-8") as f:
            for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                own = [r["lower"]]
                if kinds.get(r.get("id"), "theme") == "theme":
                    own.append(r["upper"])
                for line in own:
                    if not line:
                        continue
                    total += 1
                    if line in known:
                        copied += 1
                        examples.append(line)
        print(f"{os.path.relpath(path, ROOT)}: {copied}/{total} generated lines found verbatim in training files "
              f"= copy rate {100 * copied / max(total, 1):.1f}%" + (f" (e.g. {', '.join(examples[:5])})" if examples else ""))


if __name__ == "__main__":
    main()
