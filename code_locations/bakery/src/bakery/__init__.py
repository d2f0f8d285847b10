"""The bakery team's code location."""
