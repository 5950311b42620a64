"""The DDCMH engine: Stage-2/3 networks, reconstruction, training, model files."""
