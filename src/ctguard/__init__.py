"""ctguard: find and fix Linux connection-tracking (nf_conntrack) pitfalls."""

__version__ = "0.1.0"
