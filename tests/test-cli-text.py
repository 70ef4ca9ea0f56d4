#!/usr/bin/env python3
# atelier-cli text, chat and bench text on a generated fixture model: they stream tokens
# (or print their measurements) and exit 0; a missing or truncated model gives a clear
# error on stderr and exit status 1 (TAP output).
# Usage: test-cli-text.py ATELIER-CLI GEN-TEXT-MODEL VOCAB.gguf
import os
import subprocess
import sys
import tempfile

cli, gen, vocab = sys.argv[1], sys.argv[2], sys.argv[3]
env = dict(os.environ, ATELIER_VALIDATION="1")
results = []

with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "model.gguf")
    subprocess.run([gen, "--vocab", vocab, model], check=True)

    run = subprocess.run([cli, "text", "-m", model, "-p", "Hello", "-n", "4", "--ctx", "64",
                          "--seed", "3"], capture_output=True, text=True, env=env)
    results.append(("text streams tokens", run.returncode == 0 and run.stdout.strip() != ""
                    and "Hello" not in run.stdout and "4 generated" in run.stderr,
                    run.stderr))

    # Two messages, two replies of 3 tokens each: the conversation goes on.
    run = subprocess.run([cli, "chat", "-m", model, "--system", "Be brief.", "-n", "3",
                          "--ctx", "128", "--seed", "3"], input="Hello\nAnd again\n",
                         capture_output=True, text=True, env=env)
    results.append(("chat answers each line", run.returncode == 0
                    and run.stdout.count("\n") >= 2, run.stderr))

    run = subprocess.run([cli, "bench", "text", "-m", model, "-p", "16", "-n", "4", "-r", "1"],
                         capture_output=True, text=True, env=env)
    results.append(("bench text prints pp and tg", run.returncode == 0
                    and "pp16" in run.stdout and "tg4" in run.stdout
                    and "tokens/s" in run.stdout and "copy roof" in run.stdout,
                    run.stderr + run.stdout))

    run = subprocess.run([cli, "text", "-m", os.path.join(tmp, "missing.gguf"), "-p", "Hi"],
                         capture_output=True, text=True, env=env)
    results.append(("missing model", run.returncode == 1 and "missing.gguf" in run.stderr,
                    run.stderr))

    truncated = os.path.join(tmp, "truncated.gguf")
    with open(model, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    run = subprocess.run([cli, "text", "-m", truncated, "-p", "Hi"],
                         capture_output=True, text=True, env=env)
    results.append(("truncated model", run.returncode == 1
                    and "truncated.gguf" in run.stderr, run.stderr))

print(f"1..{len(results)}")
for i, (name, ok, stderr) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} {name}")
    if not ok:
        for line in stderr.splitlines():
            print(f"# {line}")
