"""Render a `Statement` as a PDF document (A4) with reportlab.

Text that Helvetica cannot show (e.g. Chinese project names) is set in reportlab's
built-in ``STSong-Light`` CID font, which needs no font files on the machine.
"""

from __future__ import annotations

import io
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from lightgrid.core.money import Money
from lightgrid.core.statements import Statement

_CJK_FONT = "STSong-Light"


def _font_for(text: str) -> str:
    try:
        text.encode("latin-1")
        return "Helvetica"
    except UnicodeEncodeError:
        if _CJK_FONT not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont(_CJK_FONT))
        return _CJK_FONT


def _para(text: str, style: ParagraphStyle) -> Paragraph:
    font = _font_for(text)
    return Paragraph(escape(text), ParagraphStyle(f"{style.name}-{font}", parent=style,
                                                  fontName=font))


def _amount(value: Money) -> str:
    return f"{value.amount:,.2f}"


def render_statement_pdf(st: Statement, *, center_name: str,
                         generated_at: datetime | None = None) -> bytes:
    """The statement as PDF bytes: summary, top-ups and charges by partition/resource."""
    styles = getSampleStyleSheet()
    body, heading = styles["BodyText"], styles["Heading2"]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=18 * mm, bottomMargin=18 * mm,
                            title=f"Statement {st.subject} {st.period.label}",
                            author=center_name)
    story: list[object] = [
        _para(f"{center_name}: statement {st.period.label}", styles["Title"]),
        _para(f"Account: {st.subject}", body),
        _para(f"Period: {st.period.start.isoformat()} to {st.period.end.isoformat()} "
              f"(amounts in {st.currency})", body),
    ]
    if generated_at is not None:
        story.append(_para(f"Generated {generated_at.isoformat()}", body))
    story.append(Spacer(1, 6 * mm))

    summary = [["Opening balance", _amount(st.opening)],
               ["Top-ups", _amount(st.top_ups)],
               ["Refunds", _amount(-st.refunds)],
               ["Adjustments", _amount(st.adjustments)],
               ["Organization funds", _amount(st.org_transfers)],
               ["Invoiced credit", _amount(st.invoiced)],
               ["Charges covered elsewhere", _amount(st.covered_elsewhere)],
               ["Charges", _amount(-st.charges)],
               ["Closing balance", _amount(st.closing)],
               ["Of which held for running jobs", _amount(st.held_at_close)]]
    story += [_para("Summary", heading), _table(summary, bold_rows=(0, 8))]

    if st.top_up_lines:
        rows = [["Date", "Method", "Reference", "Amount"]]
        rows += [[t.at.strftime("%Y-%m-%d"), t.method, t.reference, _amount(t.amount)]
                 for t in st.top_up_lines]
        story += [_para("Top-ups", heading), _table(rows, header=True)]

    rows = [["Project", "Partition", "Resource", "Amount"]]
    rows += [[line.project, line.partition, line.resource, _amount(line.amount)]
             for line in st.charge_lines]
    rows.append(["Total", "", "", _amount(st.charges)])
    story += [_para("Charges", heading), _table(rows, header=True,
                                                bold_rows=(len(rows) - 1,))]
    doc.build(story)
    return buf.getvalue()


def _table(rows: list[list[str]], *, header: bool = False,
           bold_rows: tuple[int, ...] = ()) -> Table:
    cells = [[c if _font_for(c) == "Helvetica" else _para(c, getSampleStyleSheet()["BodyText"])
              for c in row] for row in rows]
    table = Table(cells, hAlign="LEFT")
    style = [("ALIGN", (-1, 0), (-1, -1), "RIGHT"),
             ("FONTSIZE", (0, 0), (-1, -1), 9),
             ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey)]
    if header:
        style += [("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                  ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]
    style += [("FONTNAME", (0, r), (-1, r), "Helvetica-Bold") for r in bold_rows]
    table.setStyle(TableStyle(style))
    return table
