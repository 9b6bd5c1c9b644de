"""Builders that integration and end-to-end tests share."""
