"""The parts of the quality system's records, for their audit history (qms/audit/parts.py)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from qms.audit.parts import record_parts_register


def _ids(queryset: QuerySet[Any]) -> list[str]:
    return [str(pk) for pk in queryset.values_list("pk", flat=True)]


def _deviation(pk: str) -> dict[str, list[str]]:
    from qms.models import DeviationExtension, DeviationSubject

    return {"qms.deviationsubject": _ids(DeviationSubject.objects.filter(deviation_id=pk)),
            "qms.deviationextension": _ids(DeviationExtension.objects.filter(deviation_id=pk))}


def _capa(pk: str) -> dict[str, list[str]]:
    from qms.models.capa import CapaAction, CapaDeviation, CapaEffectivenessCheck

    return {"qms.capaaction": _ids(CapaAction.objects.filter(capa_id=pk)),
            "qms.capaeffectivenesscheck": _ids(CapaEffectivenessCheck.objects.filter(capa_id=pk)),
            "qms.capadeviation": _ids(CapaDeviation.objects.filter(capa_id=pk))}


def _change_control(pk: str) -> dict[str, list[str]]:
    from qms.models import ChangeTask

    return {"qms.changetask": _ids(ChangeTask.objects.filter(change_id=int(pk)))}


def record_parts_register_all() -> None:
    record_parts_register("qms.deviation", _deviation)
    record_parts_register("qms.capa", _capa)
    record_parts_register("qms.changecontrol", _change_control)
