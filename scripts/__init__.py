"""The host's commands behind `make` (env, up, down, redeploy, swarm-*, doctor), each run from the
checkout's root as `python3 -m scripts.<name>`, which puts the root, and so the registry, on the
import path. Standard library only here: preflight imports this before any venv exists."""
