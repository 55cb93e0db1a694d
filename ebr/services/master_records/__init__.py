"""Master batch records: a version's lifecycle (lifecycle.py), the authoring of its draft
(content.py) and the materials it prescribes (materials.py).

The public services are re-exported here, so that callers keep importing
`from ebr.services import master_records` whichever module holds a service.
"""

from ebr.services.master_records.content import (
    PARAMETER_EDITABLE,
    QUANTITY_FIXED,
    instruction_image_add,
    parameter_add,
    parameter_update,
    stage_add,
    step_add,
    step_instructions_update,
)
from ebr.services.master_records.lifecycle import (
    master_record_create,
    master_record_create_with_product,
    product_create,
    version_approve,
    version_make_effective,
    version_may_withdraw,
    version_new_draft,
    version_return,
    version_review,
    version_signers,
    version_submit,
    version_trained_operator_count,
    version_withdraw,
)
from ebr.services.master_records.materials import (
    QUANTITY_CEILING,
    QUANTITY_STEP,
    step_material_add,
    step_material_update,
)

__all__ = [
    "PARAMETER_EDITABLE",
    "QUANTITY_CEILING",
    "QUANTITY_FIXED",
    "QUANTITY_STEP",
    "instruction_image_add",
    "master_record_create",
    "master_record_create_with_product",
    "parameter_add",
    "parameter_update",
    "product_create",
    "stage_add",
    "step_add",
    "step_instructions_update",
    "step_material_add",
    "step_material_update",
    "version_approve",
    "version_make_effective",
    "version_may_withdraw",
    "version_new_draft",
    "version_return",
    "version_review",
    "version_signers",
    "version_submit",
    "version_trained_operator_count",
    "version_withdraw",
]
