"""The one exception type the command line turns into a one-line message."""


class MarsError(Exception):
    """A problem with the user's input (a file, a config, a checkpoint).

    The message must name the offending file or value and the reason; the CLI
    prints it as one line and exits non-zero, without a traceback.
    """
