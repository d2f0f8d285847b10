"""The __TEAM__ team's code location."""
