"""How much of the Flow teacher's lead over RGB a distilled stream took (motion transfer).

``transfer = (stream - RGB) / (Flow - RGB)``: 1 when the student is as accurate as
its teacher, 0 when it is no better than RGB, negative below RGB. Measured against
the RGB control (RGB trained as long as the student) as well when there is one,
since a student that starts from the RGB stream has had twice its training.
"""

from __future__ import annotations

from collections.abc import Mapping

# Distilled streams, and the RGB stream trained as long as they are (the control).
STUDENTS = ("mars", "mers")
CONTROL = "rgb_continued"


def transfer(stream: float, rgb: float, flow: float) -> float | None:
    """The share of Flow's lead over RGB that ``stream`` keeps; None without a lead.

    Accuracies in any one unit (percent or fraction). With Flow no better than RGB
    there is no motion to transfer, and the ratio means nothing.
    """
    lead = flow - rgb
    if lead <= 0:
        return None
    return (stream - rgb) / lead


def transfer_rows(top1: Mapping[str, float]) -> dict[str, dict[str, float | None]]:
    """Per student present in ``top1`` (stream -> accuracy): its transfer, and the same
    with the RGB control in place of RGB when the control was measured."""
    if "rgb" not in top1 or "flow" not in top1:
        return {}
    out = {}
    for student in STUDENTS:
        if student not in top1:
            continue
        row = {"transfer": transfer(top1[student], top1["rgb"], top1["flow"])}
        if CONTROL in top1:
            row["transfer_vs_control"] = transfer(top1[student], top1[CONTROL], top1["flow"])
        out[student] = row
    return out


def format_transfer(rows: Mapping[str, Mapping[str, float | None]]) -> str:
    """Plain-text lines under a table: ``MARS transfer 0.62 (vs RGB control 0.41)``."""
    lines = []
    for student, row in rows.items():
        text = f"{student.upper()} transfer {_ratio(row['transfer'])}"
        if "transfer_vs_control" in row:
            text += f" (vs RGB control {_ratio(row['transfer_vs_control'])})"
        lines.append(text)
    if lines:
        lines.append("transfer = (stream - RGB) / (Flow - RGB): 1 keeps all of Flow's lead, "
                     "0 none")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "n/a (Flow not above RGB)" if value is None else f"{value:.2f}"
