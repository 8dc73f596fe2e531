"""Scenes: what kind of clinical record a request signs. Shown to the signer, so each has a
plain-language label; the list is data and can be extended by configuration."""

from __future__ import annotations

from dataclasses import dataclass

from medsign.errors import InputError


@dataclass(frozen=True)
class Scene:
    code: str
    label_zh: str
    label_en: str


BUILT_IN_SCENES: tuple[Scene, ...] = (
    Scene("medical-order", "医嘱", "Medical order"),
    Scene("prescription", "处方", "Prescription"),
    Scene("nursing-record", "护理记录", "Nursing record"),
    Scene("lab-report", "检验报告", "Laboratory report"),
    Scene("exam-report", "检查报告", "Examination report"),
    Scene("imaging-report", "影像报告", "Imaging report"),
    Scene("medical-record", "病历", "Medical record"),
    Scene("progress-note", "病程记录", "Progress note"),
    Scene("discharge-summary", "出院小结", "Discharge summary"),
    Scene("surgery-record", "手术记录", "Surgery record"),
    Scene("anesthesia-record", "麻醉记录", "Anaesthesia record"),
    Scene("consent", "知情同意书", "Informed consent"),
    Scene("transfusion", "输血记录", "Transfusion record"),
    Scene("emergency-record", "急诊记录", "Emergency record"),
)
VOID_SCENE = Scene("void-statement", "作废声明", "Void statement")


class SceneRegistry:
    def __init__(self, extra: tuple[Scene, ...] = ()) -> None:
        self._scenes = {s.code: s for s in (*BUILT_IN_SCENES, *extra)}

    def get(self, code: str) -> Scene:
        scene = self._scenes.get(code)
        if scene is None:
            raise UnknownSceneError(
                f"unknown scene {code!r}; known: {', '.join(sorted(self._scenes))}"
            )
        return scene

    def all(self) -> list[Scene]:
        return sorted(self._scenes.values(), key=lambda s: s.code)


class UnknownSceneError(InputError):
    code = "unknown-scene"
    title = "Unknown scene"
