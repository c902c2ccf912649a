"""Privacy: user ids pseudonymised at rest with a keyed HMAC (:mod:`.pseudonym`), erasure of a user
from every place the service keeps personal data (:mod:`.erasure`)."""

from .pseudonym import ID_KEY_ENV, Pseudonymizer, pseudonymize_data

__all__ = ["ID_KEY_ENV", "Pseudonymizer", "pseudonymize_data"]
