"""Letters as PDF (fpdf2, pure Python: decision 0011-fpdf2-incident-letters): an A4 page with
the sender, the date, a subject line and the paragraphs the domain wrote
(``domain.incidents.beneficiary_letter``, ``ps_letter``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from fpdf import FPDF

# The PDF core fonts are Latin-1: typographic signs outside it get their plain equivalent.
_PLAIN = str.maketrans({"–": "-", "—": "-", "’": "'", "…": "...", "œ": "oe", "Œ": "OE"})

_MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]


def french_date(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def write_letter(
    path: Path,
    *,
    sender: str,
    subject: str,
    paragraphs: Sequence[str],
    day: date,
    signature: str,
) -> None:
    pdf = FPDF(format="A4")
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    pdf.set_title(subject.translate(_PLAIN))
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 6, sender.translate(_PLAIN), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, f"Le {french_date(day)}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 11)
    pdf.multi_cell(0, 6, f"Objet : {subject}".translate(_PLAIN), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 11)
    for para in paragraphs:
        pdf.multi_cell(0, 5.6, para.translate(_PLAIN), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2.5)
    pdf.ln(4)
    pdf.multi_cell(0, 5.6, signature.translate(_PLAIN), new_x="LMARGIN", new_y="NEXT")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    path.chmod(0o600)  # names: for the controller's mail house only
