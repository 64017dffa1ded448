"""Images with known text, rendered with Pillow (no camera needed)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

METER = "04217.3"
WORDS = "Parcel for Anna Weber"


def meter_and_label_png(*, upside_down: bool = False) -> bytes:
    """A gas meter's counter above a short line of words, as a snapshot would show them."""
    image = Image.new("RGB", (640, 240), (238, 236, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((24, 28, 320, 124), outline=(60, 60, 60), width=3)
    draw.text((40, 40), METER, font=ImageFont.load_default(size=64), fill=(15, 15, 15))
    draw.text((40, 160), WORDS, font=ImageFont.load_default(size=36), fill=(15, 15, 15))
    if upside_down:
        image = image.rotate(180)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
