"""
The Kubernetes API stand-in and other shipped test helpers.
"""
