"""The ML team's code location."""

TEAM = "ml"
