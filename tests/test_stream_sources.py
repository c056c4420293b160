"""``mars stream`` on sources other than files: HTTP, a stream that breaks off, a camera."""

from __future__ import annotations

import http.server
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from conftest import moving_square_frames
from test_inference import CLASSES, onnx_cache_in_tmp, save_tiny_checkpoint  # noqa: F401

from mars_action.cli import main

# The tiny model's engine does not matter here; PyTorch spares an ONNX export.
MODEL = ["--runtime", "pytorch", "--topk", "2"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def serve(data: bytes, cut_at: int | None = None) -> Iterator[str]:
    """Serve ``data`` at a 127.0.0.1 URL; with ``cut_at``, announce it all, send less."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:cut_at])
            self.close_connection = True

        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.ts"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5.0)


def require_http(url: str) -> None:
    """Skip when this PyAV's FFmpeg was built without the http protocol."""
    try:
        av.open(url, timeout=10.0).close()
    except av.FFmpegError as error:
        if "protocol not found" in str(error).lower():
            pytest.skip(f"this PyAV build has no http protocol ({error})")
        raise


def stream_lines(out: str) -> list[str]:
    """The verdict lines of ``mars stream --topk 2``, each checked against its format."""
    pattern = r"\[ +[\d.]+ - +[\d.]+ s\]  (\w+) [\d.]{5}  (\w+) [\d.]{5}  latency \d+ ms"
    lines = out.splitlines()
    found = [re.fullmatch(pattern, line) for line in lines]
    assert all(found) and {label for m in found for label in m.groups()} <= set(CLASSES), lines
    return lines


def test_stream_over_http_matches_the_file(checkpoint, make_video, capsys):
    # 32 frames fit the reader's queue (2 x window), so a live source drops none.
    video = make_video("video.ts", moving_square_frames(32, 96, 128), crf=0)
    argv = [*MODEL, "--window", "16", "--every", "8", "--checkpoint", str(checkpoint)]
    assert main(["stream", str(video), *argv]) == 0
    from_file = capsys.readouterr().out
    for url in serve(video.read_bytes()):
        require_http(url)
        code = main(["stream", url, *argv])
    out, err = capsys.readouterr()
    assert code == 0 and f"mars stream: {url}: window 16 frames" in err
    assert "stream ended; 32 frames, 3 windows" in err and "Traceback" not in err
    lines = stream_lines(out)
    assert len(lines) == 3 and lines[0].startswith("[    0.00 -     0.64 s]")
    strip = [line.rsplit("latency", 1)[0] for line in lines]  # same frames, same verdicts
    assert strip == [line.rsplit("latency", 1)[0] for line in from_file.splitlines()]


def test_a_stream_that_breaks_off_ends_with_one_clear_line(checkpoint, make_video, capsys):
    video = make_video("video.ts", moving_square_frames(80, 96, 128), crf=0)
    data = video.read_bytes()
    for url in serve(data, cut_at=len(data) // 2):
        require_http(url)
        code = main(["stream", url, *MODEL, "--window", "8", "--checkpoint", str(checkpoint)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    lines = stream_lines(out)
    (last,) = [line for line in err.splitlines() if "stream stopped" in line]
    found = re.fullmatch(
        rf"mars stream: stream stopped: {re.escape(url)}: cut off after (\d+) frames "
        r"\(.+\); (\d+) frames, (\d+) windows",
        last,
    )
    assert found, last
    decoded, shown, windows = map(int, found.groups())
    assert 8 <= shown <= decoded < 80 and windows == len(lines) >= 1  # half the video, then cut
    assert err.strip().splitlines()[-1] == last  # the last word


@pytest.mark.skipif(sys.platform != "linux", reason="camera indices map to /dev/videoN on Linux")
def test_a_camera_that_does_not_exist_is_one_clear_line(checkpoint, capsys):
    index = next(i for i in range(90, 100) if not Path(f"/dev/video{i}").exists())
    code = main(["stream", str(index), *MODEL, "--checkpoint", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"mars stream: error: camera {index} (/dev/video{index}): cannot open")
