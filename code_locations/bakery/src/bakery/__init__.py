"""The bakery team's code location."""

TEAM = "bakery"
