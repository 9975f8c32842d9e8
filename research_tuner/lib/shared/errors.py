"""The error a person fixes by changing configuration: the message says what, where, and what would work."""


class SettingsError(ValueError):
    """Configuration a person has to fix (a setting, a file, an environment variable); the message names it."""
