"""What only deployments use: the services' entrypoint (Swarm secrets, waiting for the
instance), the Redis ACL file, the code servers' health check and Flower's app."""
