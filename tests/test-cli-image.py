#!/usr/bin/env python3
# atelier-cli image and bench image on a generated tiny checkpoint: a PNG with A1111
# parameters comes out, img2img and inpainting and LoRA options work, the same seed gives
# the same file, bad sizes and files give clear errors with exit status 1 (TAP output).
# Usage: test-cli-image.py ATELIER-CLI GEN-SD-MODEL
import os
import subprocess
import sys
import tempfile
import zlib

cli, gen = sys.argv[1], sys.argv[2]
env = dict(os.environ, ATELIER_VALIDATION="1")
results = []


def png_text(path):
    """The PNG's tEXt/iTXt chunks as a dict."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed = rest[0]
            rest = rest[2:]
            _, _, rest = rest.partition(b"\0")
            _, _, text = rest.partition(b"\0")
            chunks[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode()
        pos += 12 + length
    return chunks


def run(*args):
    return subprocess.run([cli, *args], capture_output=True, text=True, env=env)


with tempfile.TemporaryDirectory() as tmp:
    model = os.path.join(tmp, "tiny.safetensors")
    subprocess.run([gen, model], check=True)
    out = os.path.join(tmp, "out.png")

    r = run("image", "-m", model, "-p", "a lighthouse at dusk", "-n", "fog", "--steps", "3",
            "--seed", "12", "-W", "64", "-H", "80", "-o", out)
    params = png_text(out).get("parameters", "") if r.returncode == 0 else ""
    results.append(("image writes a PNG with parameters", r.returncode == 0
                    and params.startswith("a lighthouse at dusk\nNegative prompt: fog\n")
                    and "Steps: 3" in params and "Seed: 12" in params
                    and "Size: 64x80" in params and "Model: tiny" in params
                    and r.stderr.count("step ") == 3, r.stderr + params))

    again = os.path.join(tmp, "again.png")
    r = run("image", "-m", model, "-p", "a lighthouse at dusk", "-n", "fog", "--steps", "3",
            "--seed", "12", "-W", "64", "-H", "80", "-o", again)
    same = r.returncode == 0 and open(out, "rb").read() == open(again, "rb").read()
    results.append(("the same seed gives the same file", same, r.stderr))

    mask = os.path.join(tmp, "mask.png")
    r = run("image", "-m", model, "-p", "x", "--steps", "2", "--seed", "1", "-W", "64",
            "-H", "80", "-o", mask)
    inpainted = os.path.join(tmp, "inpainted.png")
    r = run("image", "-m", model, "-p", "a boat", "--steps", "4", "--init", out,
            "--strength", "0.6", "--mask", mask, "-o", inpainted, "-W", "64", "-H", "80")
    params = png_text(inpainted).get("parameters", "") if r.returncode == 0 else ""
    results.append(("img2img with a mask", r.returncode == 0
                    and "Denoising strength: 0.6" in params, r.stderr + params))

    r = run("image", "-m", model, "-p", "x", "-W", "100", "-o", os.path.join(tmp, "bad.png"))
    results.append(("a bad size is refused", r.returncode == 1
                    and "multiples of 8" in r.stderr, r.stderr))

    r = run("image", "-m", model, "-p", "x", "--lora", "nothing.safetensors:0.7", "-W", "64",
            "-H", "64", "--steps", "1", "-o", os.path.join(tmp, "lora.png"))
    results.append(("a missing LoRA is named", r.returncode == 1
                    and "nothing.safetensors" in r.stderr, r.stderr))

    r = run("image", "-m", os.path.join(tmp, "missing.safetensors"), "-p", "x", "-o",
            os.path.join(tmp, "x.png"))
    results.append(("a missing model is named", r.returncode == 1
                    and "missing.safetensors" in r.stderr, r.stderr))

    truncated = os.path.join(tmp, "truncated.safetensors")
    with open(model, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 3])
    r = run("image", "-m", truncated, "-p", "x", "-o", os.path.join(tmp, "x.png"))
    results.append(("a truncated model is refused", r.returncode == 1
                    and "truncated.safetensors" in r.stderr, r.stderr))

    r = run("bench", "image", "-m", model, "-W", "64", "-H", "64", "-r", "1")
    results.append(("bench image prints its numbers", r.returncode == 0
                    and "UNet step" in r.stdout and "TFLOP/s" in r.stdout
                    and "VAE decode" in r.stdout and "peak" in r.stdout,
                    r.stderr + r.stdout))

print("1..%d" % len(results))
for i, (name, ok, log) in enumerate(results, 1):
    print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
    if not ok:
        for line in log.splitlines()[-15:]:
            print("# " + line)
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
