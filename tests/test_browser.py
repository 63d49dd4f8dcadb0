"""The page reads digits itself: `edgedigits serve` and `edgedigits web` in a real headless Chromium.

The model runs in the browser (LiteRT.js), the digits are found there (OpenCV.js); these tests
hold the browser's readings to the Python harness's on the same images, drive the canvas with
touch events in a phone viewport and the camera with Chromium's fake capture device, check that
nothing goes to `/predict` or leaves the origin, and that the page works with the server gone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, run_cli
from served import free_port, wait_for
from edgedigits.training import scenes
from edgedigits.serving import web_site
from firmware_harness import recognize
from firmware_harness.runtime import Model

sys.path.insert(0, str(REPO / "benchmarks"))
import handwriting  # noqa: E402  (crops of an answer box, as the dev-set benchmark makes them)
import web_page  # noqa: E402  (the page's readings, shared with the benchmark)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("EDGEDIGITS_ARTIFACTS", REPO / "test-artifacts"))
VENDOR = REPO / "edgedigits" / "serving" / "web" / "vendor"
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's chromium)")


def test_the_vendored_runtimes_are_the_recorded_npm_files():
    """Each vendored file has the sha256 VENDOR.json records, from the version package-lock.json pins."""
    record = json.loads((VENDOR / "VENDOR.json").read_text())
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())["packages"]
    for name, entry in record.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert lock[f"node_modules/{entry['package']}"]["version"] == entry["version"], name
    assert sorted(p.name for p in VENDOR.iterdir()) == sorted([*record, "VENDOR.json", "LICENSE-opencv"])


def test_the_web_variant_gives_the_int8_models_answers(shipped_model, test_images):
    """uint8 ends and batch 1, and the same logits as the int8 file on 2,000 digits; the shipped one is current."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="the web variant is made with LiteRT's schema")
    from edgedigits.export import artifacts

    made = artifacts.web_file(shipped_model.read_bytes(), shipped_model.stem)
    beside = shipped_model.with_name(f"{shipped_model.stem}_web.tflite")
    assert beside.read_bytes() == made
    web, source = Model(made), Model(shipped_model)
    assert web.input.dtype == np.uint8 and web.input.shape == (1, 28, 28, 1) and web.output.dtype == np.uint8
    x = test_images[0][:2000]
    np.testing.assert_array_equal(web.predict(x), source.predict(x))


def test_a_model_without_int8_ends_gets_a_one_line_error(tmp_path, shipped_model):
    """A uint8 model (here the web variant itself, alone in a folder) is not what the variant is made from."""
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="the web variant is made with LiteRT's schema")
    uint8_model = tmp_path / "uint8.tflite"
    shutil.copyfile(shipped_model.with_name(f"{shipped_model.stem}_web.tflite"), uint8_model)
    assert_one_line_error(run_cli("web", str(tmp_path / "site"), "--model", str(uint8_model)), 2, "int8")
    assert not (tmp_path / "site").exists()


def test_web_refuses_a_folder_it_did_not_write_and_rewrites_its_own(tmp_path, shipped_model):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "index.html").write_text("someone's page")
    assert_one_line_error(run_cli("web", str(theirs)), 2, "not empty")
    assert (theirs / "index.html").read_text() == "someone's page"
    ours = tmp_path / "ours"
    for _ in range(2):
        result = run_cli("web", str(ours))
        assert result.returncode == 0, result.stderr
    assert sorted(web_site.site(shipped_model)) == sorted(
        str(p.relative_to(ours)) for p in ours.rglob("*") if p.is_file() and p.name != web_site.MARKER)


def _y4m(path: Path, frame: np.ndarray, count: int = 30) -> Path:
    """A raw YUV4MPEG2 video of one BGR frame repeated: what Chromium's fake camera plays."""
    height, width = frame.shape[:2]
    yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(count):
            f.write(b"FRAME\n" + yuv)
    return path


@pytest.fixture(scope="module")
def camera_scene(test_images):
    """A photo-like scene of a digit string that the Python harness reads right, as the fake camera's video."""
    x, y = test_images
    for scene in scenes.scenes(x[:2000], y[:2000], 20, seed=11, min_digits=3, max_digits=4):
        if recognize.read(Model(_shipped()), scene.image).digits == scene.text:
            return scene
    pytest.fail("no scene among 20 that Python reads right")


def _shipped() -> Path:
    from firmware_harness.runtime import shipped_model

    return shipped_model()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, camera_scene):
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium)")
    video = _y4m(tmp_path_factory.mktemp("camera") / "digits.y4m", camera_scene.image)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"])
        yield browser
        browser.close()


class Visit:
    """A page in a fresh context, with every request it makes recorded."""

    def __init__(self, browser, url: str, **context):
        self.context = browser.new_context(**context)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.load_ms = self.page.evaluate("window.edgedigits.ready")

    def read(self, expression: str, arg=None) -> dict:
        return self.page.evaluate(f"async arg => await window.edgedigits.read({expression})", arg)

    def close(self) -> None:
        self.context.close()


def _origin_only(requests: list[str], base: str) -> None:
    """Every request went to the page's own origin (or stayed in the page: blob: and data: URLs), none to /predict."""
    assert requests
    away = [url for url in requests if not url.startswith((base + "/", "blob:", "data:"))]
    assert not away, away
    assert not any(url.startswith(base + "/predict") for url in requests), requests


@needs_browser
def test_upload_touch_drawing_and_camera_read_in_the_browser(server, browser, tmp_path, camera_scene, test_images):
    """A phone viewport: an uploaded photo, a 7 drawn with touch events, the live (fake) camera."""
    visit = Visit(browser, server + "/", viewport={"width": 390, "height": 844}, device_scale_factor=2,
                  is_mobile=True, has_touch=True)
    page = visit.page
    assert visit.load_ms > 0 and not visit.errors

    photo = tmp_path / "digits.png"
    photo.write_bytes(cv2.imencode(".png", camera_scene.image)[1].tobytes())
    page.click("button[data-tab=photo]")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("document.getElementById('digits').textContent.length > 0", timeout=20000)
    assert page.inner_text("#digits") == camera_scene.text

    page.click("button[data-tab=draw]")
    box = page.locator("#canvas").bounding_box()
    touch = visit.context.new_cdp_session(page)
    stroke = [(0.25, 0.2), (0.75, 0.2), (0.42, 0.82)]  # the top bar, then the long diagonal: a 7

    def at(fx, fy):
        return [{"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]}]

    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": at(*stroke[0])})
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        for t in np.linspace(0, 1, 20)[1:]:
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": at(x0 + t * (x1 - x0), y0 + t * (y1 - y0))})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_function("document.getElementById('digits').textContent === '7'", timeout=20000)

    page.click("button[data-tab=camera]")
    page.click("#start")
    page.wait_for_function(f"document.getElementById('digits').textContent === '{camera_scene.text}'", timeout=30000)
    page.wait_for_function("document.getElementById('fps').textContent.includes('frames/s')", timeout=10000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_camera.png"))
    video_reading = visit.read("document.getElementById('video')")
    page.click("#stop")
    assert video_reading["digits"] == camera_scene.text
    _origin_only(visit.requests, server)
    assert not visit.errors
    visit.close()


@needs_browser
def test_browser_and_python_read_the_same(server, browser, shipped_model, test_images):
    """1,000 MNIST test digits (accuracy within 0.2 points); 132 photo-like scenes and 20 digits cropped from answer
    boxes (≥ 98 % of digits the same)."""
    visit = Visit(browser, server + "/")
    x, y = test_images
    model = Model(shipped_model)
    browser_answers = web_page.read_digits(visit.page, x[:1000])
    python_answers = [recognize.read(model, image).digits for image in x[:1000]]
    truth = [str(int(label)) for label in y[:1000]]
    browser_accuracy = np.mean([a == t for a, t in zip(browser_answers, truth)])
    python_accuracy = np.mean([a == t for a, t in zip(python_answers, truth)])
    assert abs(browser_accuracy - python_accuracy) <= 0.002, (browser_accuracy, python_accuracy)
    assert python_accuracy > 0.97

    photos = [s.image for s in scenes.scenes(x, y, 100, seed=3)]
    photos += [s.image for on in ("ruled", "squared", "desk", "boxes") for s in scenes.scenes(x, y, 8, seed=4, on=on)]
    photos += [handwriting.in_a_box(cv2.resize(255 - x[k], (56, 56)), k) for k in range(1000, 1020)]
    same, total = web_page.scene_agreement(visit.page, model, photos)
    assert same / total >= 0.98, (same, total)
    # a blank sheet on a desk, and the desk alone: the page paints the desk over as Python does, to the digit
    rng = np.random.default_rng(8)
    blanks = [scenes.blank_scene(on, rng) for on in ("desk", "desk_only") for _ in range(5)]
    same, total = web_page.scene_agreement(visit.page, model, blanks)
    assert same == total, (same, total)
    # a portrait phone photo stored sideways (EXIF Orientation 6) reads upright in the page, as in Python
    portrait = scenes.scenes(x, y, 1, seed=5, min_digits=3, max_digits=3)[0]
    jpeg = base64.b64encode(scenes.phone_jpeg(portrait.image, 6)).decode()
    assert visit.page.evaluate(web_page.READ_IMAGE_JS, "data:image/jpeg;base64," + jpeg) == portrait.text
    _origin_only(visit.requests, server)
    visit.close()


@needs_browser
def test_the_page_reads_offline_after_one_visit(browser, tmp_path):
    """`edgedigits web DIR` on a plain static server; the server stopped, the reloaded page still reads."""
    folder = tmp_path / "site"
    assert run_cli("web", str(folder)).returncode == 0
    port = free_port()
    static = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder),
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/", static)
        visit = Visit(browser, base + "/")
        visit.page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=20000)
    finally:
        static.terminate()
        static.wait(timeout=10)
    visit.page.reload()
    assert visit.page.evaluate("window.edgedigits.ready") > 0
    reading = visit.read("""(() => { const c = document.getElementById('canvas'), g = c.getContext('2d');
        g.lineWidth = 18; g.beginPath(); g.moveTo(140, 40); g.lineTo(140, 240); g.stroke(); return c; })()""")
    assert reading["digits"] == "1"
    assert visit.page.evaluate("navigator.onLine") is True  # the network was there; the server was not
    visit.close()


@needs_browser
def test_the_pages_own_row_opening_is_opencvs(server, browser):
    """digits.js opens long horizontal runs itself (OpenCV.js is slow at it in Chromium): the same pixels
    as cv.morphologyEx on 300 random binary images, odd and even lengths, runs at the borders."""
    visit = Visit(browser, server + "/")
    mismatches = visit.page.evaluate("""async () => {
        const {openRows} = await import('./digits.js');
        const cv = window.cv instanceof Promise ? await window.cv : window.cv;
        let seed = 1, bad = 0;
        const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
        for (let trial = 0; trial < 300; trial++) {
          const w = 20 + Math.floor(random() * 200), h = 1 + Math.floor(random() * 20), density = random();
          const pixels = Uint8Array.from({length: w * h}, () => random() < density ? 255 : 0);
          const src = cv.matFromArray(h, w, cv.CV_8UC1, pixels);
          for (const length of [15, 16, Math.max(15, Math.floor(w / 3)), w, w + 3]) {
            const expected = new cv.Mat(), kernel = cv.getStructuringElement(cv.MORPH_RECT, new cv.Size(length, 1));
            cv.morphologyEx(src, expected, cv.MORPH_OPEN, kernel, new cv.Point(-1, -1), 1, cv.BORDER_CONSTANT,
                            cv.morphologyDefaultBorderValue());
            const made = [], got = openRows(src, length, (...a) => { const m = new cv.Mat(...a); made.push(m); return m; });
            if (expected.data.some((v, i) => v !== got.data[i])) bad++;
            [expected, kernel, ...made].forEach(m => m.delete());
          }
          src.delete();
        }
        return bad;
    }""")
    visit.close()
    assert mismatches == 0


@needs_browser
def test_a_large_photo_is_read_with_boxes_in_its_own_pixels(server, browser, shipped_model, camera_scene, tmp_path):
    """A 20-MP photo is drawn at most 4,096 px wide in the page (its RGBA copy stays small); the digits are
    Python's and the boxes come back in the photo's own coordinates."""
    big = cv2.resize(camera_scene.image, None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC)  # 5120 x 3840
    python = recognize.read(Model(shipped_model), big)
    visit = Visit(browser, server + "/")
    reading = visit.page.evaluate("""async url => {
        const image = new Image(); image.src = url; await image.decode();
        return await window.edgedigits.read(image); }""", web_page.png_url(big))
    visit.close()
    assert reading["digits"] == python.digits == camera_scene.text
    for ours, theirs in zip(reading["boxes"], python.boxes):
        assert np.allclose(ours, theirs, atol=0.03 * big.shape[0]), (ours, theirs)


def test_a_model_file_name_is_text_on_the_page(tmp_path, shipped_model):
    """The page names its model; a file name with markup in it stays text."""
    odd = tmp_path / "odd<script>.tflite"
    shutil.copyfile(shipped_model, odd)
    shutil.copyfile(shipped_model.with_name(f"{shipped_model.stem}_web.tflite"), tmp_path / "odd<script>_web.tflite")
    page = web_site.site(odd)["index.html"].decode()
    assert "odd&lt;script&gt;.tflite" in page and "odd<script>" not in page


@needs_browser
def test_the_page_weighs_confidences_by_the_digit_gate_as_python_does(server, browser, shipped_model):
    """Letters beside digits: the page's confidences are Python's (the gate's chance of a digit at all
    times the model's), so the letters fall below 0.9 in the browser too; and a printed word of letters is text
    there as in Python, its digit-like letters with it."""
    page = cv2.imread(str(REPO / "tests" / "data" / "letters" / "triplex_AB_12.png"), cv2.IMREAD_GRAYSCALE)
    model = Model(shipped_model)
    python = recognize.read(model, page, recognize.gate_for(model))
    visit = Visit(browser, server + "/")
    reading = visit.page.evaluate("""async url => {
        const image = new Image(); image.src = url; await image.decode();
        return await window.edgedigits.read(image); }""", web_page.png_url(page))
    assert reading["digits"] == python.digits
    assert np.allclose(reading["confidences"], python.confidences, atol=1e-4), (reading, python.confidences)
    assert max(python.confidences[:2]) < 0.9 <= min(python.confidences[2:])
    words = scenes.blank_scene("text", np.random.default_rng(3))  # a printed word of letters: text, as in Python
    tilted = cv2.warpAffine(words, cv2.getRotationMatrix2D((320, 240), 9, 1.0), (640, 480),
                            borderMode=cv2.BORDER_REPLICATE)  # a word the reading order puts on two lines
    for image in (words, tilted):
        python = recognize.read(model, image, recognize.gate_for(model))
        reading = visit.page.evaluate("""async url => {
            const image = new Image(); image.src = url; await image.decode();
            return await window.edgedigits.read(image); }""", web_page.png_url(image))
        assert len(python.digits) >= 8 and max(python.confidences) < 0.5
        assert reading["lines"] == python.lines and len(set(python.lines)) == (1 if image is words else 2)
        assert np.allclose(reading["confidences"], python.confidences, atol=1e-4), (reading, python.confidences)
    visit.close()


def test_the_page_has_the_digit_gate_only_for_a_model_of_the_digits(tmp_path, shipped_model):
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="relabelling a file needs LiteRT's schema")
    from edgedigits.export import tflite_edit
    from firmware_harness import contract, tflite_file

    files = web_site.site(shipped_model)
    assert json.loads(files["model.json"])["gate"]["digit"] == contract.GATE_DIGIT and "gate.tflite" in files
    letters = tmp_path / "letters.tflite"
    entry = tflite_file.parse(shipped_model.read_bytes()).metadata_json(contract.METADATA_NAME)
    letters.write_bytes(tflite_edit.with_metadata(shipped_model.read_bytes(), contract.METADATA_NAME, json.dumps(
        {**entry, "labels": list("ABCDEFGHIJ")}).encode()))
    files = web_site.site(letters)
    assert json.loads(files["model.json"])["gate"] is None and "gate.tflite" not in files
