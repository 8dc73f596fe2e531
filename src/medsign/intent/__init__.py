"""Intention: the signer proves, at the moment of signing, that they mean it.

``pin`` (argon2id signing PIN with lock-outs), ``otp`` (SMS one-time codes) and
``challenges`` (what exactly a proof is bound to). Import the submodules directly; this
package re-exports nothing so that importing one method never drags in the others.
"""
