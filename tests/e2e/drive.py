#!/usr/bin/python3
# Drives the real studio like a person, through the accessibility tree (pyatspi) and the
# X pointer and keyboard (xdotool): load a language model and continue a sentence, make
# a picture, speak a script, find all three in the Gallery and export them; then checks
# the exported files from outside. One TAP line per step and a screenshot of each page.
# Started by run-e2e.sh, which sets E2E_ATELIER, E2E_SHOTS, E2E_PROJECT and E2E_LOG.
import glob
import json
import os
import subprocess
import sys
import time
import zlib

import pyatspi

ATELIER = os.environ["E2E_ATELIER"]
SHOTS = os.environ["E2E_SHOTS"]
PROJECT = os.environ["E2E_PROJECT"]
LOG = os.environ["E2E_LOG"]
SENTENCE = "The lighthouse keeper opened the door and"
SCRIPT = "Welcome to the harbour. The lighthouse is open tonight."
PLAN = 14
step = 0


class Failed(Exception):
    pass


def ok(description, passed=True, diagnostic=""):
    global step
    step += 1
    print(f"{'ok' if passed else 'not ok'} {step} - {description}", flush=True)
    if not passed:
        raise Failed(f"{description}: {diagnostic}")


def screenshot(name):
    subprocess.run(["import", "-window", "root", os.path.join(SHOTS, name + ".png")],
                   check=True)


def xdotool(*args):
    subprocess.run(["xdotool", *map(str, args)], check=True)


def extents(node):
    try:
        # With no window manager the window sits at the origin: its coordinates are the
        # screen's (GTK 4 on X11 knows no others).
        return node.queryComponent().getExtents(pyatspi.WINDOW_COORDS)
    except (NotImplementedError, LookupError):
        return None


def on_screen(node):
    # GTK 4.8 leaves STATE_SHOWING off below the window; a widget that is not drawn,
    # such as a page the stack hides, has no size.
    box = extents(node)
    return box is not None and box.width > 0 and box.height > 0


def descendants(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children = [c for c in current if c is not None]
        stack.extend(reversed(children))


def matches(node, role, name):
    if role is not None and node.getRoleName() != role:
        return False
    if name is None:
        return True
    return name(node.name) if callable(name) else node.name == name


def find_all(root, role=None, name=None):
    return [n for n in descendants(root) if matches(n, role, name) and on_screen(n)]


def wait_for(what, probe, timeout=60.0):
    """Polls probe() until it gives something true; fails the step after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except (LookupError, RuntimeError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def find(root, role=None, name=None, timeout=30.0):
    found = wait_for(f"{role} {name if not callable(name) else '(matching)'}",
                     lambda: find_all(root, role, name), timeout)
    return found[0]


def click(node):
    """A left click in the middle of the widget, as a person's pointer would."""
    box = extents(node)
    xdotool("mousemove", box.x + box.width // 2, box.y + box.height // 2)
    time.sleep(0.1)
    xdotool("click", "1")
    time.sleep(0.3)


def press(node):
    """A button's own action: what Space or Enter on it would do."""
    action = node.queryAction()
    for i in range(action.nActions):
        if action.getName(i) == "click":
            action.doAction(i)
            time.sleep(0.3)
            return
    click(node)


def text_of(node):
    text = node.queryText()
    return text.getText(0, text.characterCount)


def choose(root, combo, item):
    """Opens a drop-down or combo row and picks one of its items with the keyboard: the
    popup is a window of its own, placed where its coordinates cannot be read."""
    before = set(find_all(root, "label", item))
    click(combo)
    label = wait_for(f"{item} in the popup",
                     lambda: [n for n in find_all(root, "label", item) if n not in before], 10)[0]
    row = label
    while row.getRoleName() != "list item":
        row = row.parent
    xdotool("key", "Home", *["Down"] * row.getIndexInParent(), "Return")
    time.sleep(0.5)


def set_spin(spin, value):
    spin.queryValue().currentValue = value
    wait_for(f"{spin.name} to read {value}", lambda: text_of(spin) == str(value), 5)


def show_page(frame, name):
    sidebar = find(frame, "list", "Sidebar")
    click(find(sidebar, "label", name))
    # A stack page has no size of its own; its child does once it is shown.
    return wait_for(f"the {name} page",
                    lambda: [p for p in descendants(frame) if matches(p, "panel", name)
                             and p.childCount > 0 and on_screen(p[0])], 10)[0]


def png_parameters(path):
    """The A1111 'parameters' text chunk of a PNG, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            if key == b"parameters":
                return value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            if key == b"parameters":
                compressed, rest = rest[0], rest[2:]
                _, _, rest = rest.partition(b"\0")
                _, _, value = rest.partition(b"\0")
                return (zlib.decompress(value) if compressed else value).decode()
        pos += 12 + length
    return None


def write_page(frame):
    page = show_page(frame, "Write")
    choose(page, find(page, "combo box", "Language model"), "tiny-llama.gguf")
    press(find(page, "push button", lambda n: n.endswith(" Load")))
    status = find(page, "label", lambda n: n.startswith("tiny-llama.gguf is ready"), 60)
    ok("Write: the chosen GGUF model loads", bool(status))

    editor = find(page, "text", "Document")
    wait_for("the draft to open", lambda: editor.getState().contains(pyatspi.STATE_EDITABLE))
    click(editor)
    xdotool("type", SENTENCE)
    wait_for("the sentence in the editor", lambda: text_of(editor) == SENTENCE, 5)
    xdotool("key", "ctrl+Return")
    done = find(page, "label", lambda n: n.startswith("Done:") and "Gallery" in n, 120)
    text = text_of(editor)
    ok("Write: Ctrl+Enter continues the sentence and keeps it in the Gallery",
       text.startswith(SENTENCE) and len(text) > len(SENTENCE) + 2,
       f"status {done.name!r}, text {text!r}")
    screenshot("1-write")
    return text[len(SENTENCE):]


def image_page(frame):
    page = show_page(frame, "Image")
    # The only checkpoint is already chosen: the row offers no other.
    model = find(page, "combo box", "Model")
    find(model, "label", "tiny-sd.safetensors")
    prompt = find(page, "text", "Prompt")
    prompt.queryEditableText().insertText(0, "a lighthouse at dusk", 20)
    set_spin(find(page, "spin button", lambda n: n.startswith("Width")), 64)
    set_spin(find(page, "spin button", lambda n: n.startswith("Height")), 64)
    set_spin(find(page, "spin button", lambda n: n.startswith("Steps")), 2)
    ok("Image: checkpoint, prompt, 64×64 and 2 steps are set",
       text_of(prompt) == "a lighthouse at dusk")

    press(find(page, "push button", lambda n: n.startswith("Generate")))
    steps_seen = set()

    def finished():
        for label in find_all(page, "label", lambda n: n.startswith("Step ")):
            if not steps_seen:
                screenshot("2-image-preview")
            steps_seen.add(label.name.split(" ")[1])
        return find_all(page, "push button", lambda n: n.startswith("Picture with seed"))
    result = wait_for("the finished picture", finished, 120)
    ok("Image: Generate makes a picture", bool(result),
       f"steps seen {sorted(steps_seen)}")
    print(f"# live preview steps seen: {', '.join(sorted(steps_seen)) or 'none (too fast)'}")
    screenshot("2-image")


def audio_page(frame):
    page = show_page(frame, "Audio")
    script = find(page, "text", "Script")
    script.queryEditableText().insertText(0, SCRIPT, len(SCRIPT))
    wait_for("the script", lambda: text_of(script) == SCRIPT, 5)
    press(find(page, "push button", lambda n: n.endswith("Speak")))
    summary = find(page, "label", lambda n: " wpm · " in n, 60)
    waveform = find(page, None, "Waveform of the voice-over")
    ok("Audio: Speak makes a voice-over with its waveform and player",
       on_screen(waveform), summary.name)
    screenshot("3-audio")


def gallery_page(frame):
    page = show_page(frame, "Gallery")
    grid = find(page, None, "Generated assets")
    count = find(page, "label", lambda n: n.startswith("3 "), 30)
    ok("Gallery: the picture, the text and the voice-over are listed", bool(count), count.name)
    items = wait_for("three gallery items",
                     lambda: [c for c in grid if c is not None and on_screen(c)][:3], 10)
    click(items[0])
    xdotool("key", "ctrl+a")
    screenshot("4-gallery")
    xdotool("key", "ctrl+e")
    wait_for("the exported files", lambda: len(glob.glob(os.path.join(PROJECT, "**", "*.json"),
                                                            recursive=True)) >= 3, 60)
    toast = find(page, "label", lambda n: "xport" in n, 10)
    ok("Gallery: Ctrl+A and Ctrl+E export the selection", True, toast.name)
    screenshot("5-exported")


def check_exports(continuation):
    files = sorted(glob.glob(os.path.join(PROJECT, "**", "*"), recursive=True))
    print("# exported: " + ", ".join(os.path.relpath(f, PROJECT) for f in files))

    def with_sidecar(extension):
        found = [f for f in files if f.endswith(extension)
                 and os.path.exists(os.path.splitext(f)[0] + ".json")]
        return found[0] if found else None

    png = with_sidecar(".png")
    ok("Export: a PNG with its JSON sidecar", png is not None)
    parameters = png_parameters(png) or ""
    ok("Export: the PNG carries the A1111 parameters",
       parameters.startswith("a lighthouse at dusk\n") and "Steps: 2" in parameters
       and "Size: 64x64" in parameters, parameters)
    with open(os.path.splitext(png)[0] + ".json") as f:
        sidecar = json.load(f)
    ok("Export: the picture's sidecar names its prompt", "a lighthouse at dusk" in json.dumps(sidecar),
       json.dumps(sidecar))

    md = with_sidecar(".md")
    body = open(md).read() if md else ""
    ok("Export: the text as Markdown with its sidecar, holding the continuation",
       md is not None and continuation.strip()[:40] in body, f"{body!r} {continuation!r}")

    wav = with_sidecar(".wav")
    header = open(wav, "rb").read(12) if wav else b""
    ok("Export: the voice-over as WAV with its sidecar",
       header[:4] == b"RIFF" and header[8:12] == b"WAVE" and os.path.getsize(wav) > 1000,
       repr(header))


def main():
    print(f"1..{PLAN}", flush=True)
    with open(LOG, "w") as log:
        app = subprocess.Popen([ATELIER], stdout=log, stderr=subprocess.STDOUT)
    try:
        desktop = pyatspi.Registry.getDesktop(0)
        atelier = wait_for("the app on the accessibility bus",
                           lambda: [a for a in desktop if a is not None and a.name == "atelier"],
                           30)[0]
        frame = find(atelier, "frame", "Atelier")
        # The whole screen, so that the sidebar sits beside the page as on a desktop.
        # With no window manager the keyboard follows the pointer into the window.
        xdotool("search", "--sync", "--onlyvisible", "--name", "^Atelier$",
                "windowsize", "%@", 1280, 800)
        find(frame, "list", "Sidebar")
        ok("the studio opens with its sidebar", True)

        continuation = write_page(frame)
        image_page(frame)
        audio_page(frame)
        gallery_page(frame)
        check_exports(continuation)

        xdotool("key", "ctrl+q")
        app.wait(timeout=20)
        ok("Ctrl+Q quits cleanly", app.returncode == 0, f"exit status {app.returncode}")
    except (Failed, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        screenshot("failure")
        print(f"Bail out! {error}", flush=True)
        return 1
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    return 0 if step == PLAN else 1


if __name__ == "__main__":
    sys.exit(main())
