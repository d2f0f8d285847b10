"""The error every part of the local stack raises when it cannot go on."""


class StackError(RuntimeError):
    """The local stack could not start; the message says which service and why."""
