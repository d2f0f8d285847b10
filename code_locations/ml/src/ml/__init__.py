"""The ML team's code location."""

TEAM = "ml"
# Where the ML team publishes its W&B artifacts.
WANDB_ENTITY = "ml"
WANDB_PROJECT = "forecasting"
# Where the bakery publishes the artifacts the ML team reads (the bakery's own config).
BAKERY_PUBLISHED = {"entity": "bakery", "project": "cakes"}
