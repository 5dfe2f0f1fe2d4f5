"""Reconstruction methods and what they cost (the package the reorganisation fills)."""
