from __future__ import annotations

import json

import jsonschema
import pytest

from hookline.errors import InvalidInput, UnknownTopic
from hookline.topics import Catalog

REFERENCE_TOPICS = [
    "employee_create",
    "employee_update",
    "employee_start",
    "employee_terminate",
    "employee_termination_revert",
    "employee_position_create",
    "employee_position_update",
    "employee_salary_create",
    "employee_salary_update",
    "employee_additional_compensation_create",
    "employee_additional_compensation_update",
    "employee_employment_status_create",
    "employee_employment_status_update",
    "leave_request_create",
    "leave_request_approve",
    "leave_request_reject",
    "leave_request_withdraw",
]


OPERATIONAL_TOPICS = [
    "hookline.webhook_disabled",
    "hookline.webhook_failing",
    "hookline.delivery_failed",
]


def test_the_catalog_ships_the_reference_products_topics_and_hooklines_own():
    assert Catalog.load().names() == REFERENCE_TOPICS + OPERATIONAL_TOPICS


@pytest.mark.parametrize("name", REFERENCE_TOPICS + OPERATIONAL_TOPICS)
def test_every_example_matches_its_schema(name):
    topic = Catalog.load().get(name)
    assert topic.description and topic.group
    jsonschema.Draft202012Validator(topic.schema).validate(topic.example)


def test_employee_create_example_is_the_seed_payload():
    example = Catalog.load().get("employee_create").example
    assert example["id"] == 130333
    assert example["attributes"]["employee_number"] == "PF124593"
    assert example["reporting_to"]["full_name"] == "Ross Kate"
    assert example["position"] == {"id": 11943, "name": "Senior Developer"}
    assert example["custom_fields"]["2692d87e-c388-49ea-b903-616bc1557746"]["value"] == "M"
    assert example["meta"]["created_at"] == "2022-09-05T18:33:55.130+03:00"


def test_unknown_topics_list_the_valid_ones():
    with pytest.raises(UnknownTopic) as caught:
        Catalog.load().get("employee_fly", field="action")
    assert caught.value.field == "action"
    assert "leave_request_withdraw" in caught.value.detail


def test_validation_names_the_failing_field():
    catalog = Catalog.load()
    with pytest.raises(InvalidInput) as caught:
        catalog.validate("employee_create", {"id": "not a number", "attributes": {}})
    assert caught.value.field.startswith("data")


def test_operators_add_topics_from_a_file(tmp_path):
    extra = tmp_path / "topics.json"
    extra.write_text(
        json.dumps(
            [
                {
                    "name": "invoice_paid",
                    "description": "Paid.",
                    "schema": {"type": "object"},
                    "example": {"id": 1},
                }
            ]
        )
    )
    catalog = Catalog.load(str(extra))
    assert "invoice_paid" in catalog and "employee_create" in catalog
    assert catalog.get("invoice_paid").group == "Other"


def test_a_broken_topics_file_is_refused(tmp_path):
    extra = tmp_path / "topics.json"
    extra.write_text(json.dumps([{"name": "half"}]))
    with pytest.raises(ValueError, match="lacks description"):
        Catalog.load(str(extra))
