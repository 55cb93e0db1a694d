"""Password rules beyond Django's own (21 CFR 11.300(a)-(b): passwords that others cannot guess).

Django's UserAttributeSimilarityValidator compares similarity ratios, so the username typed
twice ("operator1operator1") passes it; this validator refuses a password that merely contains
the username or a word of the printed name.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError


class ContainsUserAttributeValidator:
    """Refuse a password containing the username or a word of the full name (case-insensitive).

    Words shorter than `min_length` are ignored: refusing every password that contains "li" or
    "an" would refuse good passphrases without making any password harder to guess.
    """

    def __init__(self, user_attributes: tuple[str, ...] = ("username", "full_name"), min_length: int = 4) -> None:
        self.user_attributes = user_attributes
        self.min_length = min_length

    def _words(self, user: Any) -> set[str]:
        words: set[str] = set()
        for attribute in self.user_attributes:
            value = str(getattr(user, attribute, "") or "").lower()
            words |= {value, *re.split(r"[\W_]+", value)}
        return {word for word in words if len(word) >= self.min_length}

    def validate(self, password: str, user: Any = None) -> None:
        if user is None:
            return
        lowered = password.lower()
        if any(word in lowered for word in self._words(user)):
            raise ValidationError("The password must not contain your username or a part of your name.",
                                  code="password_contains_user_attribute")

    def get_help_text(self) -> str:
        return "Your password must not contain your username or a part of your name."
