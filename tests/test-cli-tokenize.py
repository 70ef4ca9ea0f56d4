#!/usr/bin/env python3
# atelier-cli tokenize on the vocab-only GGUF files of tests/data/vocab: the expected
# tokenizations of their .inp/.out cases (TAP output), and --bos. Every case of Llama 2's
# vocabulary; the first 10 of the two big BPE ones, whose loading dominates each run
# (test-tokenizer checks all their cases in-process).
# Usage: test-cli-tokenize.py ATELIER-CLI VOCAB-DIR
import subprocess
import sys

cli, vocab_dir = sys.argv[1], sys.argv[2]
checks = []
for name, n_cases in (("llama-spm", None), ("llama-bpe", 10), ("qwen2", 10)):
    path = f"{vocab_dir}/ggml-vocab-{name}.gguf"
    with open(path + ".inp", encoding="utf-8", newline="") as f:
        cases = f.read().split("\n__ggml_vocab_test__\n")
    with open(path + ".out", encoding="utf-8", newline="") as f:
        expected = f.read().split("\n")
    # Arguments cannot carry a NUL; everything else goes through as it is.
    checks += [(name, path, [text], expected[i]) for i, text in enumerate(cases[:n_cases])
               if "\0" not in text]
checks.append(("llama-spm --bos", f"{vocab_dir}/ggml-vocab-llama-spm.gguf",
               ["--bos", "Hello"], "1 15043"))
checks.append(("qwen2 --bos", f"{vocab_dir}/ggml-vocab-qwen2.gguf", ["--bos", "Hello"], "9707"))

print(f"1..{len(checks)}")
failed = 0
for n, (name, path, args, want) in enumerate(checks, 1):
    options = [a for a in args if a.startswith("--")]
    text = [a for a in args if not a.startswith("--")]
    run = subprocess.run([cli, "tokenize", "-m", path] + options + ["--"] + text,
                         capture_output=True)
    got = run.stdout.decode().rstrip("\n")
    if run.returncode == 0 and got == want:
        print(f"ok {n} {name}")
    else:
        failed += 1
        print(f"not ok {n} {name} {text!r}: expected '{want}', got '{got}' "
              f"(exit {run.returncode}) {run.stderr.decode()!r}")
sys.exit(1 if failed else 0)
