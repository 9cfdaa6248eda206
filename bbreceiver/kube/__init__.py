"""
The Kubernetes side: REST client, authentication, list/watch reflectors.
"""
