"""Sample data in the native layouts of each source, for `make demo` and tests."""
