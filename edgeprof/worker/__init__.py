"""The isolated inference worker: ``messages`` is the whole protocol, ``child`` the process, ``limits`` the caps."""
