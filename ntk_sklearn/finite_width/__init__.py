"""Finite-width statistics of the NNGP and NTK (placeholder)."""
