"""The __TEAM__ team's code location."""

TEAM = "__TEAM__"
# Where the team publishes its W&B artifacts; other teams read them from here.
WANDB_ENTITY = "__TEAM__"
WANDB_PROJECT = "__TEAM__"
