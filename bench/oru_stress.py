"""A synthetic ORU^R01 with many repetitions: the stress case for ``bench_convert``.

Real lab feeds send long panels: many orders, each with many results, repeated values
(OBX-5), repeated identifiers (PID-3) and comments. The message is deterministic and
holds no real person's data."""

from __future__ import annotations

__all__ = ["stress_message"]


def stress_message(orders: int = 20, results: int = 40, repeats: int = 10) -> bytes:
    """One ORU^R01: ``orders`` OBR groups of ``results`` OBX each (every fifth a
    string with ``repeats`` repetitions), an NTE per order, ``repeats`` PID-3 ids."""
    ids = "~".join(f"ID{i}^^^AUTH{i}&1.2.3.{i}&ISO^MR" for i in range(repeats))
    lines = [
        "MSH|^~\\&|LAB|LABFAC|EHR|HOSP|20260301101500+0100||ORU^R01^ORU_R01|STRESS1|P|2.5.1",
        f"PID|1||{ids}||Stress^Tess^Q||19700101|F|||1 Main St^^Town^ST^12345||"
        "^PRN^PH^^1^555^5550100",
        "PV1|1|O|LAB^1^1",
    ]
    for order in range(1, orders + 1):
        lines.append(f"ORC|RE|PL{order}^EHR|FI{order}^LAB||CM||||20260301090000+0100")
        lines.append(
            f"OBR|{order}|PL{order}^EHR|FI{order}^LAB|24323-8^Panel {order}^LN|||"
            "20260301080000+0100|||||||||||||||20260301100000+0100||CH|F"
        )
        lines.append(f"NTE|1|L|Comment on order {order}")
        for result in range(1, results + 1):
            if result % 5 == 0:
                value = "~".join(f"text {result}.{r}" for r in range(repeats))
                lines.append(f"OBX|{result}|ST|{1000 + result}-1^Text {result}^LN||{value}||||||F")
            else:
                lines.append(
                    f"OBX|{result}|NM|{2000 + result}-2^Analyte {result}^LN||{result}.{order}|"
                    f"mg/dL^mg/dL^UCUM|1-{100 + result}|N|||F|||20260301090000+0100"
                )
    return ("\r".join(lines) + "\r").encode()
