"""Rate limiting: the GCRA decision (L{gcra}) and the stores that keep its state."""
