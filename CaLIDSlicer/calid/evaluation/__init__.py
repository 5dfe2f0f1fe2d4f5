"""How well methods work: datasets and their patient splits, metrics, the held-out-slice evaluation, and the speed bench."""
