"""Widgets of the app: each a thin Textual widget over pure drawing functions."""
