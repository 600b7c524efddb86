"""Blind judgement of the model against the strong writer's references.

    python3 model/eval/blind.py pack --tag after --out /tmp/judge_after   # packet for the judge + private key
    python3 model/eval/blind.py score --tag after                         # after the judge wrote verdicts

`pack` pairs, for every evaluation input, the model's couplet (model/eval/outputs/<tag>.tsv) with the
reference (model/eval/reference.tsv) in a seeded random order as A/B, writes `packet.tsv` for the judge
and keeps the key (which side is the model) outside that folder (`<out>.key.json`); the judge is shown only the packet.
The judge writes `verdicts.tsv`: `id A_fluency A_duizhang A_fit B_fluency B_duizhang B_fit note`,
each 1–5 (fluency and meaning; 对仗; fit to the theme/upper line and the style). After judging, the packet,
key and raw verdicts are copied to model/eval/judging/<tag>/ and `score` reads them from there.

A couplet's score is the mean of its three marks. Printed: per system the mean score and the share of
couplets scored >= 3, and the share of inputs where the model's score is >= the writer's (win or tie),
overall and per input kind.
"""
import argparse
import csv
import json
import os
import random
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
CRIT = ("fluency", "duizhang", "fit")


def tsv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def pack(tag, out):
    inputs = {r["id"]: r for r in tsv(os.path.join(HERE, "inputs.tsv"))}
    refs = {r["id"]: r for r in tsv(os.path.join(HERE, "reference.tsv"))}
    model = {r["id"]: r for r in tsv(os.path.join(HERE, "outputs", f"{tag}.tsv"))}
    rng = random.Random(f"blind-{tag}")
    ids = list(inputs)
    rng.shuffle(ids)  # the judge sees the inputs in a shuffled order too
    os.makedirs(out, exist_ok=True)
    key = {}
    with open(os.path.join(out, "packet.tsv"), "w", encoding="utf-8") as f:
        f.write("id\tkind\tstyle\tinput\tA_upper\tA_lower\tA_hengpi\tB_upper\tB_lower\tB_hengpi\n")
        for i in ids:
            m, r, inp = model[i], refs[i], inputs[i]
            pair = [("model", m), ("writer", r)]
            rng.shuffle(pair)
            key[i] = pair[0][0]
            a, b = pair[0][1], pair[1][1]
            f.write("\t".join([i, inp["kind"], inp["style"], inp["input"], a["upper"], a["lower"], a["hengpi"],
                               b["upper"], b["lower"], b["hengpi"]]) + "\n")
    with open(key_path(out), "w") as f:
        json.dump({"tag": tag, "A_is": key}, f, indent=0, sort_keys=True)
    print(f"packet: {out}/packet.tsv ({len(ids)} pairs); key kept apart in {key_path(out)} (never shown to the judge)")


def key_path(out):
    return out.rstrip("/") + ".key.json"


def archive(tag, src):
    dst = os.path.join(HERE, "judging", tag)
    os.makedirs(dst, exist_ok=True)
    shutil.copy(key_path(src), os.path.join(dst, "key.json"))
    for name in ("packet.tsv", "verdicts.tsv"):
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    print(f"archived to {dst}")


def score(tag):
    d = os.path.join(HERE, "judging", tag)
    key = json.load(open(os.path.join(d, "key.json")))["A_is"]
    kinds = {r["id"]: r["kind"] for r in tsv(os.path.join(HERE, "inputs.tsv"))}
    rows = tsv(os.path.join(d, "verdicts.tsv"))
    per = {"model": {}, "writer": {}}
    for r in rows:
        i = r["id"].strip()
        if i not in key:
            continue
        for side in "AB":
            marks = [float(r[f"{side}_{c}"]) for c in CRIT]
            assert all(1 <= x <= 5 for x in marks), r
            who = key[i] if side == "A" else ("writer" if key[i] == "model" else "model")
            per[who][i] = sum(marks) / 3
    ids = sorted(set(per["model"]) & set(per["writer"]))
    print(f"blind judgement '{tag}': {len(ids)} inputs judged (of {len(key)})")
    for subset, sel in (("all", ids), ("theme", [i for i in ids if kinds[i] == "theme"]),
                        ("upper", [i for i in ids if kinds[i] == "upper"])):
        if not sel:
            continue
        line = [f"{subset:5s} n={len(sel):3d}"]
        for who in ("model", "writer"):
            s = [per[who][i] for i in sel]
            line.append(f"{who}: mean {sum(s)/len(s):.2f}, >=3 {100*sum(x >= 3 for x in s)/len(s):.0f}%")
        wt = sum(per["model"][i] >= per["writer"][i] for i in sel)
        line.append(f"model win-or-tie {100*wt/len(sel):.0f}%")
        print(" | ".join(line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["pack", "archive", "score"])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.tag, a.out or f"/tmp/judge_{a.tag}")
    elif a.cmd == "archive":
        archive(a.tag, a.out or f"/tmp/judge_{a.tag}")
    else:
        score(a.tag)


if __name__ == "__main__":
    main()
