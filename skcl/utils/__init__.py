"""Private helpers shared by skcl's modules."""
