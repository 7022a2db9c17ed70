"""The study file: the one place YAML is read and validated.

`schema` holds the pydantic models, `yaml_errors` reads the YAML and names each error as
`file:line: field`, and `loader` puts them together; the names the rest of the code uses are
here."""

from orchestrator.spec.loader import (
    check_beyond_grid,
    check_spread,
    load_study,
    parse_study,
    study_name,
    unsplit,
)
from orchestrator.spec.schema import (
    NAME_PATTERN,
    BudgetSpec,
    DataSpec,
    LrRule,
    ShapeSpec,
    StudySpec,
    TrainSpec,
    resolve_size,
)
from orchestrator.spec.yaml_errors import StudyError

__all__ = [
    "BudgetSpec",
    "DataSpec",
    "LrRule",
    "NAME_PATTERN",
    "ShapeSpec",
    "StudyError",
    "StudySpec",
    "TrainSpec",
    "check_beyond_grid",
    "check_spread",
    "load_study",
    "parse_study",
    "resolve_size",
    "study_name",
    "unsplit",
]
