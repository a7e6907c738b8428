import re

from winback.reports.analysis_report import build_report


def test_report_is_self_contained_and_has_every_chart(tmp_path):
    data = {
        "title": "Test <company>",
        "observation_end": "2025-12-31",
        "summary": {"churn rate (2025-Q4)": "3.1%", "lost MRR": "$1,234.00"},
        "km": {"pro": {"timeline": [0, 30, 60], "survival": [1.0, 0.9, 0.8]}},
        "reasons": [{"period": "2024-09", "reason": "price", "lost_customers": 3, "lost_mrr": 120.0},
                    {"period": "2024-10", "reason": "price", "lost_customers": 9, "lost_mrr": 410.0},
                    {"period": "2024-10", "reason": "involuntary", "lost_customers": 2, "lost_mrr": 50.0}],
        "events": [{"period": "2024-10", "label": "price increase"}],
        "cohorts": [{"cohort": "2024-01", "age": 0, "retention": 1.0}, {"cohort": "2024-01", "age": 1, "retention": 0.8}],
        "pareto": {"cumulative_share": [0.5, 0.8, 0.9, 1.0], "top_share": 0.5},
        "clv": {"values": [10.0, 20.0, 35.0], "currency": "USD", "title": "Expected 12-month CLV"},
        "tables": {"Top lost customers": [{"customer": "c1", "lost value": 120.5}]},
    }
    path = build_report(data, tmp_path / "reports" / "analysis.html")
    page = path.read_text(encoding="utf-8")
    # offline: no external scripts or stylesheets, plotly embedded
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=[\"']?https?:", page)
    assert "Plotly" in page and len(page) > 1_000_000
    for section in ("retention", "churn-by-reason", "lost-mrr-by-reason", "cohorts", "pareto", "customer-value"):
        assert f'id="{section}"' in page
    assert "price increase" in page and "top 20% hold 50%" in page
    assert "Test &lt;company&gt;" in page  # escaped
    assert "Top lost customers" in page and "c1" in page
