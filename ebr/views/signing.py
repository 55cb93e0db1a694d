"""What the screens that sign share: a signing service's refusal goes onto the signer's form."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from qms.signatures import SegregationOfDuties, SignatureRefused

# Nothing was signed and the service's transaction rolled back: the signer reads why beside the
# form they filled in (with what they typed, except the password), never an error page. The two
# PermissionErrors are not Django's PermissionDenied, which is why each needs naming here.
SIGNING_REFUSED = (PermissionDenied, SignatureRefused, SegregationOfDuties)
