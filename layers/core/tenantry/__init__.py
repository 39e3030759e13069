"""Tenantry's shared library: the code in the Lambda layer that every function imports.

Kept import-light on purpose: importing ``tenantry`` pulls in nothing, so the authorizer can use
``tenantry.keys`` and ``tenantry.tiers`` without paying for pydantic or Powertools.
"""
