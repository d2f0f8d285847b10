"""The __TEAM__ team's code location."""

TEAM = "__TEAM__"
