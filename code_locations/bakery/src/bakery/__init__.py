"""The bakery team's code location."""

TEAM = "bakery"
# Where the bakery publishes its W&B artifacts; other teams read its tables from here.
WANDB_ENTITY = "bakery"
WANDB_PROJECT = "cakes"
