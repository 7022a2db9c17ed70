"""builtin:prose from nothing: fetch its archives, clean them, tokenize with bytes and bpe:2048.

Run: python bench/prose_corpus.py   (downloads about 31 MB into a fresh temporary cache)

Prints, per source, the documents and MB of text after clean-up, then the time to fetch, to
clean, to read the cleaned cache again, and to prepare the token files (split, train the
tokenizer, encode) with each tokenizer, with the tokens of the training split.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time


def main() -> None:
    """Measure builtin:prose from an empty cache."""
    with tempfile.TemporaryDirectory() as folder:
        os.environ["STUDY_CORPUS_CACHE"] = folder
        from trainers import prose
        from trainers.data import load_token_data
        from trainers.downloads import fetch

        start = time.perf_counter()
        paths = fetch(prose.SOURCES)
        fetched = time.perf_counter() - start
        start = time.perf_counter()
        records = prose.records()
        cleaned = time.perf_counter() - start
        start = time.perf_counter()
        prose.records()
        reread = time.perf_counter() - start

        sizes = collections.defaultdict(lambda: [0, 0])
        for record in records:
            sizes[record["source"]][0] += 1
            sizes[record["source"]][1] += len(record["text"].encode())
        print(f"{'source':<10} {'archive MB':>10} {'documents':>9} {'MB text':>8}")
        for archive in prose.SOURCES:
            n, size = sizes[archive.name]
            mb = paths[archive.name].stat().st_size / 1e6
            print(f"{archive.name:<10} {mb:>10.2f} {n:>9,} {size / 1e6:>8.2f}")
        total = sum(s for _, s in sizes.values())
        print(f"{'total':<10} {'':>10} {len(records):>9,} {total / 1e6:>8.2f}"
              f"  ({total / 2**20:.2f} MiB)")  # fmt: skip
        print(f"fetch {fetched:.1f} s, clean {cleaned:.1f} s, read cleaned {reread:.1f} s")
        for tokenizer in ("bytes", "bpe:2048"):
            start = time.perf_counter()
            data = load_token_data("builtin:prose", tokenizer, 0.02, 0.02, 0, folder + "/tok")
            took = time.perf_counter() - start
            tokens = data.summary()["tokens"]
            print(f"prepare {tokenizer}: {took:.1f} s, tokens {tokens}")


if __name__ == "__main__":
    main()
