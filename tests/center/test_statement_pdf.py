from datetime import UTC, datetime, timedelta

from lightgrid.center.statement_pdf import render_statement_pdf
from lightgrid.core.funds import FundsBook
from lightgrid.core.money import money
from lightgrid.core.statements import Period, project_statement

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _statement(project="p"):
    fb = FundsBook("CNY")
    fb.open_project(project)
    fb.top_up(f"project:{project}", money("1234.50"), method="bank_transfer",
              reference="BT-0001", at=T0 + timedelta(days=1))
    fb.adjust(f"project:{project}", money("-4.50"), reason="fix", at=T0 + timedelta(days=2))
    return project_statement(fb.ledger, project, Period.month(2025, 3, UTC), "CNY")


def test_renders_a_pdf():
    pdf = render_statement_pdf(_statement(), center_name="Example Center",
                               generated_at=T0)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert len(pdf) > 1000


def test_renders_chinese_names():
    pdf = render_statement_pdf(_statement("材料计算"), center_name="国家超算中心")
    assert pdf.startswith(b"%PDF-")
    assert b"STSong-Light" in pdf
