"""Tools the fault suite (scripts/chaos*.py) and the tests share: generated targets and fault
injectors. Nothing here is used by the running product; it lives in the package (not under tests/)
so the suite's scripts do not depend on the test tree."""
