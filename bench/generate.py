"""Deterministic synthetic batch files (seeded): NDJSON, HL7 v2 (ORU, or ADT, ORU and VXU
in turn) and CSV of any size.

Synthetic data only: names and identifiers are made up from the seed.

Usage: python -m bench.generate ndjson|hl7|hl7-mixed|csv SIZE_MB OUT [--seed N]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

_FAMILIES = ["Rivera", "Okafor", "Lindqvist", "Tanaka", "Moreau", "Novak", "Haddad", "Silva"]
_GIVEN = ["Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana"]
GLOBAL_AUTHORITY = "2.16.840.1.113883.19.5"  # an OID-named assigning authority


def _birth(rng: random.Random) -> str:
    return f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def ndjson_records(seed: int) -> Iterator[bytes]:
    """Patients and heart-rate Observations, alternating, forever."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        pid = f"gen-{seed}-{n}"
        yield (
            json.dumps(
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "gender": rng.choice(["female", "male"]),
                    "birthDate": _birth(rng),
                    "identifier": [
                        {"system": f"urn:oid:{GLOBAL_AUTHORITY}", "value": f"MRN{n:09d}"}
                    ],
                    "name": [{"family": rng.choice(_FAMILIES), "given": [rng.choice(_GIVEN)]}],
                }
            )
            + "\n"
        ).encode()
        yield (
            json.dumps(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": "2026-03-01T08:00:00Z",
                    "valueQuantity": {
                        "value": rng.randint(45, 140),
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                }
            )
            + "\n"
        ).encode()


def hl7_records(seed: int) -> Iterator[bytes]:
    """ORU^R01 messages with one heart rate each, forever."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        yield (
            f"MSH|^~\\&|GEN|GENLAB|INTAKE|INTAKE|20260301080000||ORU^R01^ORU_R01|G{seed}-{n}|P|2.5.1\r"
            f"PID|1||MRN{n:09d}^^^GENHOSP^MR||{rng.choice(_FAMILIES)}^{rng.choice(_GIVEN)}||19700101|F\r"
            f"OBR|1|P{n}|F{n}|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
            f"OBX|1|NM|8867-4^Heart rate^LN||{rng.randint(45, 140)}|/min^^UCUM|||||F\r"
        ).encode()


def hl7_mixed_records(seed: int) -> Iterator[bytes]:
    """ADT^A01, ORU^R01 and VXU^V04 in turn, forever; message n is about patient
    ``H{n:08d}`` of the global authority ``GLOBAL_AUTHORITY`` (one patient per message)."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        mrn = f"H{n:08d}^^^&{GLOBAL_AUTHORITY}&ISO^MR"
        name = f"{rng.choice(_FAMILIES)}^{rng.choice(_GIVEN)}"
        stamp = f"202603{1 + n % 28:02d}{n % 24:02d}{n % 60:02d}00"
        kind = ("ADT^A01^ADT_A01", "ORU^R01^ORU_R01", "VXU^V04^VXU_V04")[(n - 1) % 3]
        head = (
            f"MSH|^~\\&|GEN|GENHOSP|INTAKE|INTAKE|{stamp}||{kind}|M{seed}-{n}|P|2.5.1\r"
            f"PID|1||{mrn}||{name}||{_birth(rng).replace('-', '')}|{rng.choice('FM')}\r"
        )
        if kind.startswith("ADT"):
            body = (
                f"EVN|A01|{stamp}\r"
                f"PV1|1|I|WARD-{n % 9}^{n % 40}^A^GENHOSP|||||||MED|||||||||V{n:08d}^^^GENHOSP^VN"
                f"|||||||||||||||||||||||||{stamp}\r"
            )
        elif kind.startswith("ORU"):
            body = (
                f"OBR|1|P{n}|F{n}|8716-3^Vital signs^LN|||{stamp}||||||||||||||||||F\r"
                f"OBX|1|NM|8867-4^Heart rate^LN||{rng.randint(45, 140)}|/min^^UCUM"
                f"|||||F|||{stamp}\r"
            )
        else:
            body = (
                f"ORC|RE||IMM{n}\r"
                f"RXA|0|1|{stamp}||208^COVID-19 vaccine^CVX|0.3|mL^^UCUM||00^New record^NIP001"
                f"||||||LOT{n % 997}||PFR^Pfizer^MVX|||CP|A\r"
            )
        yield (head + body).encode()


def csv_records(seed: int) -> Iterator[bytes]:
    """rpm-vitals rows (header first), forever."""
    rng = random.Random(seed)
    yield b"patient_id,timestamp,heart_rate,bp_systolic,bp_diastolic,spo2,weight_kg\n"
    n = 0
    while True:
        n += 1
        yield (
            f"RPM-{n % 50000},2026-03-01T{n % 24:02d}:{n % 60:02d}:00,{rng.randint(45, 140)},"
            f"{rng.randint(100, 160)},{rng.randint(60, 100)},{rng.randint(90, 100)},"
            f"{rng.randint(450, 1200) / 10}\n"
        ).encode()


KINDS = {
    "ndjson": ndjson_records,
    "hl7": hl7_records,
    "hl7-mixed": hl7_mixed_records,
    "csv": csv_records,
}


def expected_patients(kind: str, records: int, partner: str, seed: int) -> set[str]:
    """The Patient ids the first ``records`` records of ``kind`` (``ndjson`` or
    ``hl7-mixed``) made with ``seed`` must be stored as when ``partner`` sends them: the
    manifest fault tests hold the record to (ids are the sending partner's: from the
    FHIR id it gave, or from the identifier for HL7 v2)."""
    from shared.normalize.ids import patient_id, resource_id

    if kind == "ndjson":  # Patient, Observation, Patient, ...: gen-<seed>-1, ...
        count = (records + 1) // 2
        return {
            resource_id(partner, "Patient", "id", f"gen-{seed}-{n}") for n in range(1, count + 1)
        }
    if kind == "hl7-mixed":
        system = f"urn:oid:{GLOBAL_AUTHORITY}"
        return {patient_id(partner, system, f"H{n:08d}") for n in range(1, records + 1)}
    raise ValueError(f"no manifest for {kind}")


def write(kind: str, size_bytes: int, out: Path, seed: int = 7) -> int:
    """Write whole records until ``size_bytes`` is reached; returns the record count."""
    records = 0
    written = 0
    with out.open("wb") as file:
        for record in KINDS[kind](seed):
            file.write(record)
            written += len(record)
            records += 1
            if written >= size_bytes:
                break
    return records - (1 if kind == "csv" else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("size_mb", type=float)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    count = write(args.kind, int(args.size_mb * 1024 * 1024), args.out, args.seed)
    print(f"{count} records, {args.out.stat().st_size} bytes -> {args.out}")


if __name__ == "__main__":
    main()
