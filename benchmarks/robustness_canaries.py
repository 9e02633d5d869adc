"""The robustness benchmark's canaries and media: inotify (through ctypes) on each case's canary folder,
a local HTTP listener that every http:// trick points at, and the synthetic media the cases use (good,
corrupt, empty and truncated files, and the canary files an escape would open).
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from robustness_cases import log


# -- inotify through ctypes ---------------------------------------------------------------------

IN_ACCESS, IN_OPEN, IN_ISDIR, IN_Q_OVERFLOW = 0x1, 0x20, 0x40000000, 0x4000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000


class Inotify:
    """Watches folders for IN_OPEN / IN_ACCESS; events are kept per watch descriptor."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._lock = threading.Lock()
        self.events: dict[int, list[tuple[int, str]]] = {}
        self.overflow = False

    def watch(self, path: Path) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), IN_OPEN | IN_ACCESS)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path} failed")
        return wd

    def drain(self) -> None:
        with self._lock:
            while True:
                try:
                    buf = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    return
                i = 0
                while i + 16 <= len(buf):
                    wd, mask, _cookie, n = (int.from_bytes(buf[i + k:i + k + 4], sys.byteorder, signed=(k == 0))
                                            for k in (0, 4, 8, 12))
                    name = buf[i + 16:i + 16 + n].split(b"\0", 1)[0].decode("utf-8", "replace")
                    i += 16 + n
                    if mask & IN_Q_OVERFLOW:
                        self.overflow = True
                        continue
                    self.events.setdefault(wd, []).append((mask, name))

    def events_for(self, wds: dict[int, Path]) -> list[dict[str, str]]:
        self.drain()
        out, seen = [], set()
        with self._lock:
            for wd, folder in wds.items():
                for mask, name in self.events.get(wd, []):
                    what = "open" if mask & IN_OPEN else "read"
                    path = str(folder / name) if name else str(folder)
                    if (path, what) not in seen:
                        seen.add((path, what))
                        out.append({"path": path, "event": what + (" (folder)" if mask & IN_ISDIR else "")})
        return out

    def close(self) -> None:
        os.close(self.fd)


# -- the HTTP canary ----------------------------------------------------------------------------

class HttpCanary:
    """A local TCP listener; the http:// tricks point at it, and any request is an escape."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = ""
                parts = first.split()
                target = parts[1] if len(parts) > 1 else ""
                key = target.strip("/").split("/", 1)[0] if target else "?"
                with self._lock:
                    self.hits.setdefault(key, []).append(first[:200])
                try:
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def hits_for(self, key: str) -> list[str]:
        with self._lock:
            return list(self.hits.get(key, []))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# -- synthetic media ----------------------------------------------------------------------------

def _png(path: Path, w: int = 16, h: int = 12) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 16 % 256, y * 20 % 256, 128))
                    for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _segment(path: Path, fmt: str) -> None:
    """An AAC tone in an MPEG-TS (.ts) or ADTS (.aac) file, decodable, for the playlist canaries."""
    try:
        import av
        import numpy as np

        import media_factory as mf

        with av.open(str(path), "w", format=fmt) as out:
            stream = out.add_stream("aac", rate=22050, layout="mono")
            t = np.arange(22050) / 22050
            mf._push_audio(out, stream, mf.to_int16(0.3 * np.sin(2 * np.pi * 330 * t)), 22050, "mono")
    except Exception as e:  # still a canary file, just not a decodable one
        log(f"note: could not write {path.name} ({type(e).__name__}: {e}); using bytes")
        path.write_bytes(os.urandom(4096))


def make_assets(folder: Path) -> None:
    import media_factory as mf

    folder.mkdir(parents=True, exist_ok=True)
    mf.tone(folder / "good.wav", seconds=1.0)
    mf.noise(folder / "good2.wav", seconds=1.0)
    mf.make_video(folder / "clip.mp4", seconds=1.0)
    _png(folder / "image.png")
    mf.corrupt_file(folder / "corrupt.wav")
    mf.corrupt_file(folder / "corrupt.mp4")
    mf.empty_file(folder / "empty.wav")
    mf.empty_file(folder / "empty.mp4")
    wav = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(wav[:len(wav) // 2])
    mp4 = (folder / "clip.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(mp4[:len(mp4) * 2 // 5])
    # canary material (copied into each case's canary folder)
    mf.tone(folder / "canary.wav", freq=660, seconds=1.0)
    mf.make_video(folder / "canary.mp4", seconds=1.0)
    _segment(folder / "canary.ts", "mpegts")
    _segment(folder / "canary.aac", "adts")


def canary_files(assets: Path) -> dict[str, Any]:
    rnd = os.urandom(2048)
    return {
        "canary.wav": assets / "canary.wav", "canary.mp4": assets / "canary.mp4",
        "canary.ts": assets / "canary.ts", "canary.aac": assets / "canary.aac",
        "secret.txt": b"canary: nothing should read this\n",
        "voice/v.onnx": rnd, "voice/v.onnx.json": b'{"audio": {"sample_rate": 22050}}\n',
        "model/model.bin": rnd, "model/config.json": b"{}\n", "model/tokenizer.json": b"{}\n",
        "model/vocabulary.txt": b"a\nb\n",
    }
