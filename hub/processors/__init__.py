"""Processors: notebooks published with a JSON definition, their immutable versions, and their runs.

A processor is a named, owned entry in the registry; each publish stores an immutable, content-addressed version
(the notebook's bytes under their SHA-256, and the validated definition); a run executes one version with papermill
on a Dask Gateway cluster of its invoker. The same registry is served as OGC API - Processes.
"""
