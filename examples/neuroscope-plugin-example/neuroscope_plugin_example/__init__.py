"""A worked example of a neuroscope-tui plugin (see ../README.md): the balance of the MLP and
attention outputs in each block, as a heatmap metric, a per-layer table and a view."""
