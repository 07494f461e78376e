"""API security: tokens with scopes, the SSRF guard of on-demand checks, rate and size limits.

See docs/security.md for the threat model these pieces answer.
"""
