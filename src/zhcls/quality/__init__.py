"""Data quality: likely label errors (label_issues), the files around them (review), and cleaning (clean)."""
