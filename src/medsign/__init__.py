"""medsign: self-hosted electronic signatures and certificates for hospitals."""

__version__ = "0.1.0"
