"""Records, problems and money: what every layer uses. Imports nothing of the package above it."""
__version__ = "0.1.0"
