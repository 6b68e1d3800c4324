"""The one way into a run (`pipeline`), its manifest, the register of final runs and the Python API."""
