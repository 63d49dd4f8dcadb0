"""`edgedigits serve`'s API: a real server on a loopback port, real HTTP (the page: test_browser.py)."""

from __future__ import annotations

import json
import re
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from conftest import REPO, run_cli  # noqa: E402
import hostile  # noqa: E402  (benchmarks/, on the path from conftest)
from served import free_port  # noqa: E402


def post(base: str, body: bytes, content_type: str = "image/png", query: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(base + "/predict" + query, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_predict_returns_what_the_cli_prints(server, test_images, tmp_path, shipped_model):
    x, y = test_images
    image = 255 - x[0]  # dark ink on white, 28x28
    path = tmp_path / "digit.png"
    path.write_bytes(_png(image))
    status, answer = post(server, path.read_bytes(), query="?name=digit.png")
    assert status == 200
    cli = json.loads(run_cli("predict", str(path), "--json", "--model", str(shipped_model)).stdout)
    assert answer == {**cli, "path": "digit.png"}
    assert answer["digits"] == str(y[0])


def test_details_add_crops_and_latency(server, test_images):
    status, answer = post(server, _png(255 - test_images[0][1]), query="?details=1")
    assert status == 200 and answer["latency_ms"] > 0
    crop = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(answer["crops"][0]), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert crop.shape == (28, 28)


def _huge_png_header() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("body,content_type,status,fragment", [
    (b"", "image/png", 400, "empty"),
    (b"hello", "text/plain", 415, "Content-Type"),
    (b"not an image at all", "image/png", 400, "not an image"),
    (_huge_png_header(), "image/png", 413, "30000x30000"),
])
def test_bad_uploads_get_a_json_4xx_and_the_server_keeps_serving(server, test_images, body, content_type, status,
                                                                   fragment):
    code, answer = post(server, body, content_type)
    assert code == status and fragment in answer["error"]
    code, answer = post(server, _png(255 - test_images[0][2]))
    assert code == 200 and answer["digits"] == str(test_images[1][2])


def test_a_50_mb_upload_is_refused_from_its_headers(server, test_images):
    """The server answers 413 before reading the body (a client reads it after sending the headers)."""
    import http.client

    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "image/png")
    connection.putheader("Content-Length", str(50 << 20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "upload limit" in json.loads(response.read())["error"]
    connection.close()
    code, answer = post(server, _png(255 - test_images[0][3]))
    assert code == 200 and answer["digits"] == str(test_images[1][3])


def test_curl_form_and_data_binary_uploads_are_read(server, test_images):
    """What `curl -F file=@x.png` and `curl --data-binary @x.png` send."""
    body = _png(255 - test_images[0][4])
    form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + body + b"\r\n--XyZ--\r\n")
    code, answer = post(server, form, "multipart/form-data; boundary=XyZ")
    assert code == 200 and answer["digits"] == str(test_images[1][4]) and answer["path"] == "x.png"
    code, answer = post(server, body, "application/x-www-form-urlencoded")
    assert code == 200 and answer["digits"] == str(test_images[1][4])


def test_the_page_names_its_model(server, shipped_model):
    with urllib.request.urlopen(server + "/", timeout=10) as response:
        assert f'<code id="model">{shipped_model.name}</code>' in response.read().decode()


def test_a_full_server_answers_503_with_retry_after_and_health_still_answers(server, tmp_path):
    """More uploads at once than the workers and their queue hold: the rest are told to come back."""
    import concurrent.futures
    import http.client

    sys.path.insert(0, str(REPO / "benchmarks"))
    import hostile

    page = hostile.dense_digits_png(tmp_path).read_bytes()  # ~0.2 s of work each
    host, port = server.removeprefix("http://").split(":")

    def upload(_) -> tuple[int, str | None]:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("POST", "/predict", body=page, headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(upload, range(40)))
        health = urllib.request.urlopen(server + "/health", timeout=5)
        assert health.status == 200
    assert {status for status, _ in answers} <= {200, 503}
    assert (503, "1") in answers and (200, None) in answers


def test_an_upload_that_stops_arriving_gets_408(server):
    import socket as sockets

    from edgedigits.serving.serve import BODY_TIMEOUT_S

    host, port = server.removeprefix("http://").split(":")
    with sockets.create_connection((host, int(port)), timeout=BODY_TIMEOUT_S + 10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
                  b"\x89PNG")
        started = time.monotonic()
        reply = b""
        while b"}" not in reply and (chunk := s.recv(4096)):  # the headers and the JSON body may come apart
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive within" in reply
    assert BODY_TIMEOUT_S - 1 < time.monotonic() - started < BODY_TIMEOUT_S + 5


def test_page_files_are_served_compressed_when_asked(server, shipped_model):
    import gzip

    from edgedigits.serving import web_site

    expected = web_site.site(shipped_model)["vendor/opencv.js"]
    request = urllib.request.Request(server + "/vendor/opencv.js", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        body = response.read()
    assert len(body) < len(expected) / 2 and gzip.decompress(body) == expected
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server + "/no-such-file.js", timeout=10)
    assert missing.value.code == 404


def test_serve_speaks_https_with_a_certificate(tmp_path, shipped_model):
    """A phone's browser gives the camera and the offline copy only to https (or localhost)."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    code = "import sys; from edgedigits.cli import main; sys.exit(main())"
    process = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port), "--certfile", str(cert),
                                "--keyfile", str(key)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2, context=context) as response:
                    assert json.loads(response.read())["status"] == "ok"
                break
            except (OSError, ssl.SSLError):
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
                time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "https://" in process.communicate()[0]
    bad = run_cli("serve", "--certfile", str(tmp_path / "missing.pem"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot use") and "Traceback" not in bad.stderr


def test_serving_every_address_prints_addresses_a_phone_can_open(tmp_path):
    """`--host 0.0.0.0` binds every address; the URL to open is this machine's, never http://0.0.0.0/."""
    from served import serving

    with open(tmp_path / "out.txt", "w") as log, serving("--host", "0.0.0.0", log=log) as (_, port):
        time.sleep(0.5)
    printed = (tmp_path / "out.txt").read_text()
    assert "0.0.0.0" not in printed and f"http://127.0.0.1:{port}/" in printed
    assert "on the network:" in printed and "need https: --certfile" in printed
    from edgedigits.serving.serve import lan_addresses, where_to_open

    assert all(f"http://{a}:{port}/" in printed for a in lan_addresses())
    assert where_to_open("::", 8000, True, "m.tflite")[1] == "  on this machine: https://127.0.0.1:8000/"
    assert not any("need https" in line for line in where_to_open("0.0.0.0", 8000, True, "m.tflite"))


@pytest.mark.parametrize("build,status,fragment", [
    (hostile.many_parts_form, 400, "more than 16 parts"),
    (hostile.nested_form, 400, "not an image"),  # read flat: the first part is bytes, and no image
])
def test_crafted_forms_are_refused_off_the_event_loop(server, test_images, build, status, fragment):
    """20,000 parts once stalled /health for 5.8 s; 2,000 levels of nesting gave a 500 (RecursionError)."""
    content_type, body = build()
    code, answer = post(server, body, content_type)
    assert code == status and fragment in answer["error"], answer
    code, answer = post(server, _png(255 - test_images[0][3]))
    assert code == 200 and answer["digits"] == str(test_images[1][3])


def test_a_progressive_jpeg_of_thousands_of_scans_is_refused_before_decoding(server, tmp_path):
    code, answer = post(server, hostile.scan_bomb_jpeg(tmp_path).read_bytes(), "image/jpeg")
    assert code == 400 and re.search(r"a JPEG of [\d,]{5,} scans", answer["error"]), answer


def test_a_loopback_server_answers_only_to_its_own_names(server):
    """DNS rebinding: a page at evil.example whose name now points to 127.0.0.1 must not read the server."""
    for name, status in (("evil.example", 421), ("127.0.0.1.evil.example:80", 421), ("localhost:8000", 200),
                         (server.removeprefix("http://"), 200), ("[::1]:8000", 200)):
        request = urllib.request.Request(server + "/health", headers={"Host": name})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                code = response.status
        except urllib.error.HTTPError as e:
            code = e.code
        assert code == status, name
    from edgedigits.serving.serve import host_name

    assert [host_name(h) for h in ("[::1]:80", "LocalHost", "a:1", "::1")] == ["::1", "localhost", "a", "::1"]


@pytest.mark.parametrize("port", ["70000", "0"])
def test_a_port_that_is_not_one_is_a_one_line_error(port):
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("serve", "--port", port), 2, "is not a port")
