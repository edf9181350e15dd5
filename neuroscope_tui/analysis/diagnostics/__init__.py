"""Diagnostics: detectors that look for what is wrong or unusual inside a model by itself.

Each detector is a pure function of `DiagnosticInputs` (traces of a prompt set, and where a
model was at hand its neuron and gradient health) returning `Finding`s, or raising
`DetectorSkipped` with the reason when the inputs lack what it reads. No torch here.

One module per detector (`massive`, `sinks`, `neurons`, `gradients`, `collapse`,
`head_checks`, `numerics`), each with `NAME`, `INFO` (description, what it needs), its
thresholds as named constants and `detect(inputs)`; `runner.run_detectors` runs them in
`runner.DETECTORS` order and gathers a `DiagnosticReport`.
"""
