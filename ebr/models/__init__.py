"""Manufacturing models: master records, batches, execution, equipment and materials."""

from ebr.models.batches import (
    Batch,
    BatchCounter,
    BatchStatus,
    CustodyEvent,
    Entry,
    EquipmentUse,
    MaterialUse,
    StepExecution,
    StepStatus,
)
from ebr.models.exports import PdfExport, PdfExportStatus
from ebr.models.instruments import (
    Alarm,
    AlarmKind,
    EvaluatedUntil,
    EvaluationFailure,
    EvaluationWatchMark,
    Instrument,
    InstrumentParameter,
    Reading,
    ReadingPost,
    ReadingPostEvaluation,
)
from ebr.models.master import (
    InstrumentLimit,
    MasterRecord,
    MasterRecordVersion,
    ParameterKind,
    ParameterSpec,
    Product,
    Stage,
    StepMaterial,
    StepTemplate,
    VersionStatus,
)
from ebr.models.resources import Equipment, EquipmentStatus, EquipmentType, LotStatus, Material, MaterialLot

__all__ = [
    "Alarm", "AlarmKind", "Batch", "BatchCounter", "BatchStatus", "CustodyEvent", "Entry", "Equipment",
    "EquipmentStatus", "EquipmentType", "EquipmentUse", "EvaluatedUntil", "EvaluationFailure", "EvaluationWatchMark",
    "Instrument", "InstrumentLimit", "InstrumentParameter",
    "LotStatus", "MasterRecord", "MasterRecordVersion", "Material", "MaterialLot", "MaterialUse", "ParameterKind",
    "ParameterSpec", "PdfExport", "PdfExportStatus", "Product", "Reading", "ReadingPost", "ReadingPostEvaluation",
    "Stage", "StepExecution", "StepMaterial", "StepStatus", "StepTemplate", "VersionStatus",
]
