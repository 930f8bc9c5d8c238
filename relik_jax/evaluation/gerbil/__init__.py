"""GERBIL: URIs, A2KB/D2KB scoring, datasets, NIF reading/writing and the NIF web service."""
