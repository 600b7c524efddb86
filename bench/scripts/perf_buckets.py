#!/usr/bin/env python3
"""Buckets the samples of a `perf script` dump of couplet-api by call path.

Used for the API profile in docs/BENCHMARKS.md:

    perf record -F 299 --call-graph dwarf,16384 -o api.data -p <api pid> -- sleep 6
    perf script -i api.data > api.script
    python3 bench/scripts/perf_buckets.py api.script

Each sample goes to the first bucket whose pattern matches any frame of its
stack, in the order below (so a handler frame that is waiting on Redis counts
as Redis client work, and an idle runtime thread as park).
"""
import collections
import re
import sys

RULES = [
    ("tokio park/epoll/futex (idle wake-ups)", r"Context::park|park_internal|park_condvar|park_timeout"),
    ("redis client (MultiplexedConnection I/O + RESP parse)", r"redis::"),
    ("handler logic (handlers, auth, body, JSON, ids, metrics)",
     r"api::handlers|api::auth|api::body|api::routes|api::state|api::error|common::|serde|sha2|prometheus"),
    ("warp filter machinery (route matching, future drop)", r"warp::"),
    ("HTTP connection I/O (api::server::serve, hyper h1 read/parse/write syscalls)", r"hyper::proto|hyper_util|api::server::serve"),
    ("tokio scheduler (task poll/wake)", r"tokio::runtime"),
]


def main(path: str) -> None:
    counts = collections.Counter()
    n = 0
    for sample in open(path, encoding="utf-8", errors="replace").read().split("\n\n"):
        frames = [l.strip() for l in sample.strip().split("\n")[1:] if l.strip()]
        if not frames:
            continue
        n += 1
        text = "\n".join(frames)
        for name, rx in RULES:
            if re.search(rx, text):
                counts[name] += 1
                break
        else:
            counts["other"] += 1
    print("samples", n)
    for name, v in counts.most_common():
        print(f"{100 * v / n:5.1f}%  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
