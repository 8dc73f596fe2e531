"""PDF documents: PAdES signing through the key store, visible appearances and seals, forms
composed from signed data, archive sealing, and the PDF facts the verifier checks.

The only package that imports pyHanko; everything else sees plain bytes and dataclasses.
"""
