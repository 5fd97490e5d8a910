"""The reference training code: optimizers, sampling, accumulation.

Plain numpy, written to be read next to the papers and the PyTorch docs: the
claims of families C, D and E run these loops, and the checkers compare a
user's loop with them.
"""
