"""Bitnami Sealed Secrets, offline: the format and the policy of what a render seals.

certificate.py  the controller's certificate (load and check, fingerprints, a development pair)
crypto.py       sealing and unsealing one value (RSA-OAEP session key + AES-GCM, the scope's label)
manifest.py     the SealedSecret object (build it, read a committed one's encryptedData, redact diffs)
reuse.py        re-seal only what changed, from per-value records
policy.py       seal a render's secrets, only to certificates the state trusts
"""
