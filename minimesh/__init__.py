"""minimesh: a service mesh built to be learned from."""

__version__ = "0.1.0"
