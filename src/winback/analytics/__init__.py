"""Analytics: pure functions over Ibis tables (history) and NumPy arrays: metrics, cohorts, survival, RFM, CLV."""
