"""QR images of a code's URL (segno): PNG for print, SVG for posters of any size."""

from __future__ import annotations

import io

import segno

SCALE_PNG = 8
BORDER = 4


def qr_image(url: str, kind: str) -> bytes:
    """The QR code of `url` as 'png' or 'svg' bytes; error correction M survives a smudge."""
    buffer = io.BytesIO()
    qr = segno.make(url, error="m", micro=False)
    if kind == "png":
        qr.save(buffer, kind="png", scale=SCALE_PNG, border=BORDER)
    else:
        qr.save(buffer, kind="svg", scale=SCALE_PNG, border=BORDER, xmldecl=True)
    return buffer.getvalue()
