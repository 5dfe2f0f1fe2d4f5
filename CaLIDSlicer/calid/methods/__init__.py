"""How missing slices are made: the public ``reconstruct``, the classical baselines, registration, and the CaLID fill.

:mod:`.reconstruction` is ``calid.reconstruct``: it checks the input, picks the method and
copies the acquired slices back bit-exact; each method only fills the gaps.
"""
