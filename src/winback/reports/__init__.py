"""Reports: self-contained HTML (charts with Plotly, its JavaScript embedded so files open offline)."""
