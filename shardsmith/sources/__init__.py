"""One adapter per public dataset: native layout -> harmonised rows."""
