"""The ML team's code location."""

# Where the bakery publishes the artifacts the ML team reads (the bakery's own config).
BAKERY_PUBLISHED = {"entity": "bakery", "project": "cakes"}
