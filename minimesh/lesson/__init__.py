"""Lessons: listing, showing and checking them against a live stack."""
