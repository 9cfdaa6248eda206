"""
bbreceiver: receive Bitbucket webhooks and refresh the Kargo Warehouses and
Promotions they concern.
"""

__version__ = "0.1.0"
