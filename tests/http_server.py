"""A local HTTP server for tests that must not reach the internet.

Serves a folder on 127.0.0.1 with byte-range requests (what GDAL's /vsicurl/ needs to
read a COG window by window; Python's own ``http.server`` ignores ``Range``), counts the
requests it answers, and can be told to stall (accept, then never answer).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    """A running server: its base URL and what it was asked."""

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    stall: bool = False


@contextmanager
def serve(root: Path) -> Iterator[Served]:
    """Serve ``root`` over HTTP with range requests until the block ends."""
    served = Served(url="", root=root)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            served.requests.append(self.path)
            if served.stall:
                time.sleep(3600)
            path = root / self.path.split("?")[0].lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match:
                served.ranges.append(match.group(0))
                start = int(match.group(1))
                end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
                part = data[start : end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                part = data
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if body:
                self.wfile.write(part)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


WEB_MERCATOR_HALF = 20037508.342789244
"""Half the side of the EPSG:3857 square the XYZ tile grid covers, in metres."""


def write_tile_pyramid(scene: Path, root: Path, zoom: int) -> list[tuple[int, int]]:
    """Cut an EPSG:3857 scene aligned on the XYZ grid at ``zoom`` into 256 px PNG tiles.

    Writes ``root/{zoom}/{x}/{y}.png`` (RGBA, lossless) and returns the tiles' (x, y).
    """
    import warnings

    import numpy as np
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    size = 2 * WEB_MERCATOR_HALF / 2**zoom / 256  # metres per pixel at this zoom
    written = []
    with rasterio.open(scene) as src:
        x0 = round((src.transform.c + WEB_MERCATOR_HALF) / size / 256)
        y0 = round((WEB_MERCATOR_HALF - src.transform.f) / size / 256)
        assert abs(src.transform.a - size) < 1e-9 * size, "scene on the zoom's grid"
        for ty in range(src.height // 256):
            for tx in range(src.width // 256):
                data = src.read(window=Window(tx * 256, ty * 256, 256, 256))
                if data.shape[0] == 3:
                    data = np.concatenate([data, np.full((1, 256, 256), 255, data.dtype)])
                path = root / str(zoom) / str(x0 + tx) / f"{y0 + ty}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                with warnings.catch_warnings():  # PNG tiles carry no georeference
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    with rasterio.open(path, "w", driver="PNG", width=256, height=256,
                                       count=4, dtype="uint8") as dst:  # fmt: skip
                        dst.write(data)
                written.append((x0 + tx, y0 + ty))
    return written
