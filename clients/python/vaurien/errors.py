"""Exceptions of the vaurien package."""


class VaurienError(Exception):
    """Something went wrong talking to or running Vaurien."""


class APIError(VaurienError):
    """The control API refused a request; carries the server's message."""

    def __init__(self, status, message, body=None):
        super().__init__("%s: %s" % (status, message))
        self.status = status
        self.message = message
        self.body = body


class StartError(VaurienError):
    """The vaurien binary did not start; carries what it printed."""

    def __init__(self, message, stderr=""):
        super().__init__(message + ("\n" + stderr if stderr else ""))
        self.stderr = stderr
