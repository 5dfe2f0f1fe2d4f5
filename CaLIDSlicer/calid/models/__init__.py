"""The networks and their files: architectures, the model-file format, where models are found, the registry, fetch and import."""
