"""How a run starts and survives: the launchers (warm, a container per run, chosen by
isolation), the run task a warm run worker executes, its heartbeat and resume, and the run
credentials a container run gets."""
