#!/usr/bin/python3
"""Renders a report's index.html in headless Chromium, offline, and checks what a reader sees:

1. every <img> loads (complete and naturalWidth > 0), and no error event fires: a probe copy of
   the page (the report itself has no script) records both into the DOM, read with --dump-dom;
2. the page is not blank: a screenshot of the real index.html has enough non-white pixels;
3. no console message appears (Chromium's --enable-logging=stderr prints each as a CONSOLE line;
   the page has no script, so any message is an error).
The detectors are tested first on a planted page with a missing image and a script error, so a
detector that sees nothing cannot pass silently. Network is off (every host resolves to nothing).

Exit 0 pass, 1 fail, 77 skipped: no Chromium (scripts/deps installs Debian's `chromium`); ctest
reports 77 as skipped, never as passed.
  python3 tests/reports/browser_test.py [path/to/seqscale]
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import support

SKIP = 77
WINDOW = (1280, 2400)
MIN_INK = 0.02  # fraction of non-white pixels a rendered report has well above (text, figures)

PROBE = """<script>
window.__probe_errors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__probe_errors.push(e.message || ("failed to load " + ((t && (t.src || t.href)) || "?")));
}, true);
window.addEventListener("load", function () {
  var broken = [];
  for (var i = 0; i < document.images.length; ++i) {
    var img = document.images[i];
    if (!(img.complete && img.naturalWidth > 0)) broken.push(img.getAttribute("src"));
  }
  var pre = document.createElement("pre");
  pre.id = "seqscale-probe";
  pre.textContent = JSON.stringify({images: document.images.length, broken: broken,
                                    errors: window.__probe_errors, text: document.body.innerText.length});
  document.body.appendChild(pre);
});
</script>"""


def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def chromium(browser, profile, *args):
    """One headless Chromium run, offline; returns (stdout, stderr)."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    ran = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    return ran.stdout, ran.stderr


def probe(browser, tmp, page_path):
    """Loads a copy of the page with the probe script; returns the probe's findings."""
    with open(page_path) as f:
        text = f.read()
    probe_path = os.path.join(os.path.dirname(page_path), "probe-" + os.path.basename(page_path))
    with open(probe_path, "w") as f:
        f.write(text.replace("<head>", "<head>\n" + PROBE, 1))
    dom, _ = chromium(browser, os.path.join(tmp, "profile-probe"), "--virtual-time-budget=10000", "--dump-dom",
                      "file://" + probe_path)
    os.remove(probe_path)
    m = re.search(r'<pre id="seqscale-probe">(.*?)</pre>', dom, re.S)
    if not m:
        raise AssertionError(f"the probe never ran on {page_path} (no result in the dumped DOM)")
    return json.loads(html.unescape(m.group(1)))


def screenshot(browser, tmp, page_path, name):
    """Screenshot of the page; returns (fraction of non-white pixels, console lines)."""
    import matplotlib.image as mpimg  # Debian's python3-matplotlib, as the report itself uses

    shot = os.path.join(tmp, name + ".png")
    _, log = chromium(browser, os.path.join(tmp, "profile-" + name), "--enable-logging=stderr", "--v=0",
                      f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}", "file://" + page_path)
    if not os.path.exists(shot):
        raise AssertionError(f"Chromium wrote no screenshot of {page_path}:\n{log[-2000:]}")
    pixels = mpimg.imread(shot)[:, :, :3]
    ink = float((pixels.min(axis=2) < 0.94).mean())
    console = [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return ink, console


def check_detectors(browser, tmp, report_dir):
    """A planted page must show a broken image, an error and a console line."""
    planted = os.path.join(report_dir, "planted.html")
    with open(os.path.join(report_dir, "index.html")) as f:
        text = f.read()
    with open(planted, "w") as f:
        f.write(text.replace("</body>", '<img src="no-such-figure.png"><script>no_such_function();</script></body>'))
    found = probe(browser, tmp, planted)
    _, console = screenshot(browser, tmp, planted, "planted")
    os.remove(planted)
    problems = []
    if found["broken"] != ["no-such-figure.png"]:
        problems.append(f"probe missed the broken image: {found}")
    if not any("no_such_function" in e for e in found["errors"]):
        problems.append(f"probe missed the script error: {found}")
    if not any("no_such_function" in line for line in console):
        problems.append(f"console log missed the script error: {console}")
    return problems


def main(argv):
    if len(argv) > 1:
        os.environ["SEQSCALE_BIN"] = argv[1]
    browser = find_chromium()
    if not browser:
        print("SKIPPED: no Chromium found (chromium, chromium-browser, $CHROMIUM); scripts/deps installs Debian's "
              "chromium package")
        return SKIP
    tmp = tempfile.mkdtemp(prefix="seqscale_browser_test_")
    try:
        report_dir = os.path.join(tmp, "report")
        ran = support.render(support.FULL, report_dir)
        if ran.returncode != 0:
            print(f"FAIL: seqscale report exited {ran.returncode}: {ran.stderr.strip()}")
            return 1
        page = os.path.join(report_dir, "index.html")
        problems = check_detectors(browser, tmp, report_dir)
        found = probe(browser, tmp, page)
        n_imgs = len(re.findall(r"<img ", open(page).read()))
        if found["images"] != n_imgs or n_imgs < len(support.CORE_FIGURES):
            problems.append(f"the browser saw {found['images']} images, the page has {n_imgs}")
        problems += [f"image did not load: {src}" for src in found["broken"]]
        problems += [f"error event: {e}" for e in found["errors"]]
        ink, console = screenshot(browser, tmp, page, "index")
        if ink < MIN_INK:
            problems.append(f"the page looks blank: {ink:.2%} non-white pixels (want >= {MIN_INK:.0%})")
        problems += [f"console: {line}" for line in console]
        print(f"{browser}: {found['images']} images loaded, {len(found['broken'])} broken, "
              f"{len(found['errors'])} errors, {len(console)} console lines, {ink:.1%} of the screenshot inked")
        if problems:
            print("FAIL:\n  " + "\n  ".join(problems))
            return 1
        print("PASS")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
