"""The one exception type that the command line reports as a plain, one-line error."""


class VidclsError(Exception):
    """Bad input or an impossible request, explained to the user.

    The message names the file, key or value at fault, what was expected and what was
    received. The CLI prints it without a traceback and exits with status 2.
    """
