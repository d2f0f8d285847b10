"""W&B Launch ops (`run_launch_agent`, `run_launch_job`)."""
