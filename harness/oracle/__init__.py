"""What the right answer is: the validator that rejects what the ISA leaves undefined,
the reference interpreter, helpers, maps and the Outcome record every run produces."""
