"""The porting report: report.json (everything) and report.md (the tables people read)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oko.port.fidelity import OutputFidelity, TaskFidelity


@dataclass
class Thresholds:
    min_cosine: float
    min_euclidean: float
    min_task: float


DEFAULT_THRESHOLDS = {
    "f32": Thresholds(0.999, 0.98, 0.98),
    "f16": Thresholds(0.995, 0.95, 0.97),
    "int8": Thresholds(0.99, 0.80, 0.95),
}


@dataclass
class PortReport:
    model: str
    source: str
    target: str
    precision: str
    artefact: str
    size_mb: float
    engine: dict[str, Any]
    input_shapes: dict[str, list[int]]
    calibration: dict[str, Any]
    validation: dict[str, Any]
    outputs: list[OutputFidelity]
    task: TaskFidelity | None
    thresholds: Thresholds
    stage_seconds: dict[str, float]
    speed: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self) -> None:
        """Fill ``failures`` from the thresholds."""
        t = self.thresholds
        self.failures = []
        for o in self.outputs:
            if o.cosine_min < t.min_cosine:
                self.failures.append(f"output {o.name}: cosine {o.cosine_min:.4f} < {t.min_cosine}")
            if o.euclidean_min < t.min_euclidean:
                self.failures.append(
                    f"output {o.name}: euclidean similarity {o.euclidean_min:.4f} < {t.min_euclidean}")
        if self.task is not None and self.task.value < t.min_task:
            self.failures.append(f"{self.task.metric}: {self.task.value:.4f} < {t.min_task}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def write(self, folder: Path) -> None:
        (folder / "report.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        (folder / "report.md").write_text(self.markdown())

    def markdown(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"# oko port: {self.model} -> {self.target} {self.precision.upper()} ({verdict})", "",
            "| target | precision | artefact | size MB | engine | est. ms/frame on target "
            "| host ms/frame (ported) | host ms/frame (ONNX Runtime FP32) |",
            "|---|---|---|---|---|---|---|---|",
            f"| {self.target} | {self.precision} | {self.artefact} | {self.size_mb:.2f} | "
            f"{self.engine.get('kind')} | {_ms(self.speed.get('estimated_ms'))} | "
            f"{_ms(self.speed.get('host_ms'))} | {_ms(self.speed.get('fp32_host_ms'))} |",
            "",
        ]
        if self.speed.get("estimate_source"):
            lines += [f"Estimated on-target latency: {self.speed['estimate_source']}.", ""]
        if self.speed.get("host_note"):
            lines += [f"Host timing: {self.speed['host_note']}.", ""]
        lines += ["## Fidelity against ONNX Runtime FP32", "",
                  f"Validation: {self.validation.get('samples')} samples from "
                  f"{self.validation.get('source')}.", "",
                  "| output | cosine mean | cosine min | euclidean sim. mean | euclidean sim. min "
                  "| max abs diff |", "|---|---|---|---|---|---|"]
        for o in self.outputs:
            lines.append(f"| {o.name} | {o.cosine_mean:.5f} | {o.cosine_min:.5f} | "
                         f"{o.euclidean_mean:.5f} | {o.euclidean_min:.5f} | {o.max_abs_diff:.4g} |")
        if self.task is not None:
            details = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in self.task.details.items())
            lines += ["", f"**{self.task.metric}: {self.task.value:.4f}** ({details})"]
        t = self.thresholds
        lines += ["", f"Thresholds: cosine >= {t.min_cosine}, euclidean similarity >= "
                      f"{t.min_euclidean}, task metric >= {t.min_task}."]
        if self.failures:
            lines += ["", "## Failed", ""] + [f"- {f}" for f in self.failures]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        lines += ["", "## Stages", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in self.stage_seconds.items()]
        return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
