"""A small external MCP server for the MCP client tests, made with the official SDK's FastMCP.

    python -m tests.mcp_fixture_server              # over stdio
    python -m tests.mcp_fixture_server --http PORT  # streamable HTTP on 127.0.0.1:PORT/mcp

Its tools: `shout` (text in, text out), `louder` (a WAV path in, a louder WAV's path and its peak
out, with an output schema), `measure` (an image marked `x-media`, as Cadenza's own server marks it)
and `fail` (always an error)."""

from __future__ import annotations

import sys
import tempfile
import wave
from pathlib import Path
from typing import Annotated

import numpy as np
from mcp.server.fastmcp import FastMCP
from pydantic import BaseModel, Field

server = FastMCP("fixture", log_level="WARNING", port=int(sys.argv[sys.argv.index("--http") + 1]) if "--http" in sys.argv else 8000)


class Louder(BaseModel):
    audio: str = Field(description="path to the louder audio file")
    peak: float = Field(description="the new peak, 0 to 1")


@server.tool()
def shout(text: str, times: int = 1) -> str:
    """Upper-cases a text and repeats it."""
    return " ".join([text.upper()] * times)


@server.tool()
def louder(sound_path: Annotated[str, Field(description="path to an audio file (WAV, 16-bit)")],
           gain_db: Annotated[float, Field(ge=-20, le=20, description="gain in dB")] = 6.0) -> Louder:
    """Makes a 16-bit WAV file louder and writes the result beside the server's temporary files."""
    with wave.open(sound_path, "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    x = np.frombuffer(frames, dtype=np.int16).astype(np.float64) * 10 ** (gain_db / 20)
    y = np.clip(x, -32768, 32767).astype(np.int16)
    out = Path(tempfile.mkdtemp(prefix="mcp-fixture-")) / "louder.wav"
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(y.tobytes())
    return Louder(audio=str(out), peak=float(np.abs(y).max()) / 32768)


@server.tool()
def measure(picture: Annotated[str, Field(json_schema_extra={"x-media": "image"})]) -> str:
    """Says how large a picture is, as WIDTHxHEIGHT."""
    from PIL import Image

    with Image.open(picture) as im:
        return f"{im.width}x{im.height}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason given."""
    raise ValueError(f"failed on purpose: {reason}")


if __name__ == "__main__":
    server.run("streamable-http" if "--http" in sys.argv else "stdio")
