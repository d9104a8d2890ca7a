"""Bundled hardware description files of the targets (TOML)."""
