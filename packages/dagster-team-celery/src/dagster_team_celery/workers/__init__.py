"""What keeps a team's workers alive: the dagster-team-worker command, the preloaded parent
that forks its step and run workers, their start-up checks, and their liveness and health
check."""
