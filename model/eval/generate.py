"""Generate the model's couplets for the fixed evaluation inputs, through the real worker binary.

    python3 model/eval/generate.py --tag after                       # models/default, default pools
    python3 model/eval/generate.py --tag after4 --pool-idle 8        # larger pool at batch 1 (opt-in)
    python3 model/eval/generate.py --tag before --model-dir /tmp/old --pool 1
    python3 model/eval/generate.py --tag after --samples model/eval/samples_after.tsv   # + 20/style showcase

Every input is generated with `couplet-worker generate` (the same decoder the service runs) and a fixed
seed (1000 + row number), so a run reproduces. Output: model/eval/outputs/<tag>.tsv
(`id upper lower hengpi`). The 横批 comes from the service's bank; the judge sees it too.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(ROOT, "target/release/couplet-worker")


def read_inputs():
    with open(os.path.join(HERE, "inputs.tsv"), encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def run(args, env):
    out = subprocess.run([BIN, "generate", *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"couplet-worker generate {' '.join(args)} failed: {out.stderr.strip()}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


def generate_one(row, seed, env, count=1):
    style = row["style"]
    if row["kind"] == "theme":
        return run(["--theme", row["input"], "--style", style, "--length", row["length"], "--seed", str(seed),
                    "--count", str(count)], env)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(row["input"] + "\n")
        path = f.name
    try:
        return run(["--upper-file", path, "--style", style, "--seed", str(seed)], env)
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--model-dir", default="")
    ap.add_argument("--pool", type=int, default=0, help="CANDIDATE_POOL (0 = the worker's default)")
    ap.add_argument("--pool-idle", type=int, default=0,
                    help="CANDIDATE_POOL_IDLE, the pool of a small batch (0 = the worker's default, off; "
                         "the after4 run used --pool-idle 8)")
    ap.add_argument("--samples", default="", help="also write 20 unedited theme couplets per style here")
    a = ap.parse_args()
    env = dict(os.environ)
    if a.model_dir:
        env["MODEL_DIR"] = a.model_dir
    if a.pool:
        env["CANDIDATE_POOL"] = str(a.pool)
        env["CANDIDATE_POOL_IDLE"] = str(a.pool)
    if a.pool_idle:
        env["CANDIDATE_POOL_IDLE"] = str(a.pool_idle)
    rows = read_inputs()
    os.makedirs(os.path.join(HERE, "outputs"), exist_ok=True)
    path = os.path.join(HERE, "outputs", f"{a.tag}.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\tupper\tlower\thengpi\n")
        for i, row in enumerate(rows):
            res = generate_one(row, 1000 + i, env)[0]
            if "error" in res:
                print(f"{row['id']}: {res['error']}", file=sys.stderr)
                f.write(f"{row['id']}\t\t\t\n")
                continue
            f.write(f"{row['id']}\t{res['upper']}\t{res['lower']}\t{res['hengpi']}\n")
    print(f"wrote {path}")
    if a.samples:
        with open(a.samples, "w", encoding="utf-8") as f:
            f.write("style\ttheme\tupper\tlower\thengpi\n")
            for style in ("classic", "festive", "literary", "business", "family"):
                themes = [r for r in rows if r["kind"] == "theme" and r["style"] == style]
                for j, row in enumerate(themes):
                    for res in generate_one(row, 5000 + j, env, count=2):
                        f.write(f"{style}\t{row['input']}\t{res['upper']}\t{res['lower']}\t{res['hengpi']}\n")
        print(f"wrote {a.samples}")


if __name__ == "__main__":
    main()
