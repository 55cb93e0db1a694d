"""Argon2 with the smallest cost, for tests only: the same algorithm and hash format as production.

Production keeps Django's Argon2 defaults (tests/qms/test_settings_env.py checks it); hashes made
here still verify with the production hasher, because Argon2 stores its parameters in the hash.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 256
    parallelism = 1
