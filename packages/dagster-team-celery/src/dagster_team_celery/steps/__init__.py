"""How a run's steps run: the team executor and its orchestration loop, the step task a step
worker executes, Terminate, concurrency pool slots, and where step outputs live."""
