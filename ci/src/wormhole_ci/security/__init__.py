"""Security scanning: one findings model, a parser per scanner, one policy, one writer per format."""
