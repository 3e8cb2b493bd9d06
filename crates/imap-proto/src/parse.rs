//! Per-command parsers (one submodule per command family).
