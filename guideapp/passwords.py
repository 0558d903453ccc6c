"""Password hashing with Argon2id (argon2-cffi's recommended parameters), and the policy
a staff password meets: long enough, and not guessable by zxcvbn's measure (its common-
password, name, keyboard-pattern and date lists, and the staff member's own phone and name)."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 10
MIN_SCORE = 3  # zxcvbn: 3 "safely unguessable", ~10^8 guesses (an online attack's reach)

_hasher = PasswordHasher()
# Verified against when the phone is unknown, so a miss costs as much as a hit.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_problems(password: str, *, user_inputs=()) -> list[str]:
    """Why `password` may not be a staff password (empty: it may)."""
    if len(password) < MIN_LENGTH:
        return [f"At least {MIN_LENGTH} characters."]
    # zxcvbn's cost grows with the length; 128 characters (the schema's limit) stay cheap.
    verdict = zxcvbn(password[:128], user_inputs=[i for i in user_inputs if i])
    if verdict["score"] >= MIN_SCORE:
        return []
    feedback = verdict["feedback"]
    hints = [feedback["warning"]] if feedback["warning"] else []
    hints += feedback["suggestions"]
    return ["Too easy to guess." + (" " + " ".join(hints) if hints else "")]
