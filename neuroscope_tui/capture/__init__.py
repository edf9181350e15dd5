"""Everything that touches the live model: anatomy, hooks, the attention tap, runs."""
