"""Exceptions raised on bad input.

Every message names the file (or key) and says what is wrong, so that an
imaging core can fix the input without reading a traceback.
"""


class PipelineInputError(ValueError):
    """Input data that the pipeline refuses to process.

    Parameters
    ----------
    path : str or os.PathLike or None
        The offending file (or config key); it starts the message.
    problem : str
        What is wrong, in plain words.
    """

    def __init__(self, path, problem):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(PipelineInputError):
    """A configuration that does not validate against the schema."""
