"""A package shaped like the seed's `@repository` example (`from . import assets`)."""
