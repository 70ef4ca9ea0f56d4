#!/usr/bin/env python3
# Converts a vocab-only GGUF file into the plain text vocabulary format read by
# tests/test-tokenizer.c, so that the tokenizer tests do not depend on the GGUF
# reader.  Usage: gguf-to-vocab.py IN.gguf OUT.vocab.gz
#
# Output (gzip'd UTF-8 text, one record a line, strings escaped as C string
# literals so that g_strcompress() reads them back):
#   model <tokenizer.ggml.model>
#   pre <tokenizer.ggml.pre>
#   <key> <integer>            for the special ids and add_* flags present
#   tokens <n>                 then n lines "<type> <score> <text>"
#   merges <n>                 then n lines "<merge>"
import gzip
import struct
import sys

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
           7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def scalar(self, fmt):
        value, = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.scalar("<Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype in SCALARS:
            return self.scalar(SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item_type = self.scalar("<I")
            n = self.scalar("<Q")
            return [self.value(item_type) for _ in range(n)]
        raise ValueError("unknown GGUF value type %d" % vtype)


def read_metadata(path):
    with open(path, "rb") as f:
        r = Reader(f.read())
    if r.data[:4] != b"GGUF":
        raise ValueError("%s: not a GGUF file" % path)
    r.pos = 4
    version = r.scalar("<I")
    if version not in (2, 3):
        raise ValueError("%s: unsupported GGUF version %d" % (path, version))
    r.scalar("<Q")  # tensor count: vocab-only files have none worth reading
    n_kv = r.scalar("<Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.scalar("<I"))
    return kv


def escape(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def main():
    kv = read_metadata(sys.argv[1])
    p = "tokenizer.ggml."
    lines = ["model " + kv[p + "model"], "pre " + kv.get(p + "pre", "default")]
    for key in ("bos_token_id", "eos_token_id", "eot_token_id",
                "unknown_token_id", "padding_token_id",
                "add_bos_token", "add_eos_token", "add_space_prefix"):
        if p + key in kv:
            lines.append("%s %d" % (key, int(kv[p + key])))
    tokens = kv[p + "tokens"]
    scores = kv.get(p + "scores", [0.0] * len(tokens))
    types = kv.get(p + "token_type", [1] * len(tokens))
    lines.append("tokens %d" % len(tokens))
    for text, score, ttype in zip(tokens, scores, types):
        lines.append("%d %r %s" % (ttype, score, escape(text)))
    merges = kv.get(p + "merges", [])
    lines.append("merges %d" % len(merges))
    lines.extend(escape(m) for m in merges)
    with gzip.GzipFile(sys.argv[2], "wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
