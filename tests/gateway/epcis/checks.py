"""The two judges every EPCIS output is checked by, neither of them ours: the official EPCIS
2.0 JSON Schema (a copy in ``tests/fixtures/epcis/``, URI format checking on) and GS1's
reference event hash generator (the ``epcis-event-hash-generator`` package)."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
from epcis_event_hash_generator import hash_generator, json_to_py
from jsonschema.protocols import Validator

from gateway.epcis import JsonValue, document

#: The official schema, GS1's published example documents and the golden documents.
DATA: Final = Path(__file__).resolve().parents[2] / "fixtures" / "epcis"
SCHEMA_FILE: Final = DATA / "EPCIS-JSON-Schema.json"
EXAMPLE_FILES: Final = tuple(sorted(DATA.glob("*.jsonld")))
#: The normative EPCIS 2.0 JSON-LD context (https://ref.gs1.org/standards/epcis/2.0.0/): it
#: defines every bare CBV word and GS1 vocabulary term an event may use.
CONTEXT_FILE: Final = DATA / "epcis-context-2.0.0.json"
GOLDEN_DIR: Final = DATA / "golden"
CREATED: Final = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


@cache
def validator() -> Validator:
    """The official schema's validator, with a format checker that really checks ``uri``."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = cls.FORMAT_CHECKER
    # Without rfc3987 installed jsonschema silently skips "uri" and a misspelt bizStep passes.
    assert "uri" in checker.checkers, "install rfc3987: URI formats would not be checked"
    instance: Validator = cls(schema, format_checker=checker)
    return instance


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Every schema error of ``doc`` (a JSON round trip first: what a consumer would parse)."""
    wire = json.loads(json.dumps(doc, allow_nan=False))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(wire)
    ]


def reference_hash(event: dict[str, JsonValue]) -> str:
    """The reference generator's eventID of ``event``, hashed alone in a tagrelay document."""
    doc = json.loads(json.dumps(document([copy.deepcopy(event)], created=CREATED)))
    logging.disable(logging.ERROR)  # it logs and drops an event it cannot hash: we see it below
    try:
        with warnings.catch_warnings():
            # It reads the EPCIS context it ships with a deprecated importlib call (no network:
            # the context is in the package, the others are inline).
            warnings.filterwarnings("ignore", "open_text is deprecated", DeprecationWarning)
            events = json_to_py.event_list_from_epcis_document_json(doc)
        hashes = hash_generator.epcis_hashes_from_events(events)
    finally:
        logging.disable(logging.NOTSET)
    assert len(hashes) == 1, "the reference generator could not hash the event"
    hashed: str = hashes[0]
    return hashed


@cache
def context_terms() -> frozenset[str]:
    """Every term the EPCIS 2.0 context defines, at any depth (its scoped contexts included)."""
    terms: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                terms.add(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(CONTEXT_FILE.read_text(encoding="utf-8")))
    return frozenset(terms)
