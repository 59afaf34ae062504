from pathlib import Path

from courses.states_doc import render, transitions

DOC = Path(__file__).resolve().parents[2] / "docs" / "course-states.md"


def test_the_state_graph_document_is_current():
    assert DOC.exists(), "docs/course-states.md is missing: run `make docs`"
    assert DOC.read_text() == render(), "docs/course-states.md is stale: run `make docs`"


def test_the_graph_has_every_transition_of_the_design():
    edges = {(source, target) for _, source, target, _ in transitions()}
    assert {
        ("registered", "stratified"),
        ("stratified", "induction"),
        ("induction", "response_assessment"),
        ("response_assessment", "post_remission_chemo"),
        ("response_assessment", "hsct_workup"),
        ("post_remission_chemo", "hsct_workup"),
        ("post_remission_chemo", "maintenance"),
        ("hsct_workup", "transplanted"),
        ("transplanted", "completed"),
        ("maintenance", "completed"),
    } <= edges
    assert {s for s, t in edges if t == "off_protocol"} == {
        "registered",
        "stratified",
        "induction",
        "response_assessment",
        "post_remission_chemo",
        "hsct_workup",
        "transplanted",
        "maintenance",
    }
