"""Local process mode: the platform's services as plain processes (`make dev`)."""
