"""Diagnostics: detectors that look for what is wrong or unusual inside a model by itself.

Each detector is a pure function of `DiagnosticInputs` (traces of a prompt set, and where a
model was at hand its neuron and gradient health) returning `Finding`s, or raising
`DetectorSkipped` with the reason when the inputs lack what it reads. No torch here.
"""
