"""Reports: tables and figures made from run records and saved arrays only (they never recompute metrics)."""
