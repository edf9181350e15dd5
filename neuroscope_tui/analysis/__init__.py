"""Pure functions of a Trace (or of numpy arrays): no torch, no textual."""
