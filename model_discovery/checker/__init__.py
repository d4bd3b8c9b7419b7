"""Checks a design before it is trained: a static filter, then dynamic checks in the sandbox."""

from model_discovery.checker.api import DEFAULT_SCALE, check_design
from model_discovery.checker.findings import CheckReport, Finding
from model_discovery.checker.static import static_check

__all__ = ["DEFAULT_SCALE", "CheckReport", "Finding", "check_design", "static_check"]
