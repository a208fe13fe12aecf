"""Great Expectations suites, multi-row checks as code, and quarantine reconciliation."""
