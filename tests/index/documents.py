"""Household documents made by the tests: text, Markdown, a PDF written byte by byte and
a PNG with text rendered by Pillow (no fixture files, nothing downloaded)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

BOILER = (
    "The heating unit's guarantee expires in March 2031; after that date repairs are "
    "billed to the owner."
)
"""The passage the meaning test must find. Shares no word with `BOILER_QUERY`."""
BOILER_QUERY = "When does my furnace warranty run out?"

NOTES_MD = f"""# House notes

## Garden
Tomatoes go into the raised bed in May, beans two weeks later. The compost is turned
every autumn.

## Boiler
{BOILER}

## Car
The winter tyres are stored at the garage in town and are fitted in October.
"""

RECIPE_TXT = """Grandmother's apple cake

Peel six apples and cut them into thin slices. Mix flour, sugar, butter and two eggs
into a smooth dough, spread it in the tin and lay the slices on top.

Bake for forty minutes at 180 degrees until golden brown.
"""

INSURANCE_PAGES = (
    ["Municipal Insurance Company", "Policy 4471-22, household contents", "Dear customer,"],
    [
        "For burst pipes and other water damage the deductible is 500 euros per claim.",
        "Glass breakage is covered without any deductible.",
    ],
)
PARCEL_LABEL = "Parcel for Anna Weber"


def pdf_bytes(pages: tuple[list[str], ...] | list[list[str]]) -> bytes:
    """A PDF with a text layer: one page per list of lines, Helvetica 12 pt."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_ref = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        stream = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
            for line in lines
        )
        stream += " ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_ref} 0 R >> >> >>".encode()
        )
        data = stream.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
    out.write(trailer % (len(objects) + 1, xref))
    return out.getvalue()


def label_png(text: str = PARCEL_LABEL) -> bytes:
    image = Image.new("RGB", (720, 160), (238, 236, 230))
    ImageDraw.Draw(image).text(
        (30, 50), text, font=ImageFont.load_default(size=48), fill=(15, 15, 15)
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_household(share: Path) -> dict[str, Path]:
    """The test corpus in `share`; returns its files by name."""
    (share / "letters").mkdir(parents=True, exist_ok=True)
    (share / "photos").mkdir(exist_ok=True)
    files = {
        "notes": share / "notes.md",
        "recipe": share / "recipe.txt",
        "insurance": share / "letters" / "insurance.pdf",
        "label": share / "photos" / "label.png",
    }
    files["notes"].write_text(NOTES_MD, encoding="utf-8")
    files["recipe"].write_text(RECIPE_TXT, encoding="utf-8")
    files["insurance"].write_bytes(pdf_bytes(INSURANCE_PAGES))
    files["label"].write_bytes(label_png())
    return files
