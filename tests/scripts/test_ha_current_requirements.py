"""The requirements of the tests on Home Assistant's current release."""

from __future__ import annotations

from scripts.ha_current_requirements import merged

NODE = """# the node
aiohttp==3.11.16
llama-cpp-python==0.3.36  # built once
onnxruntime==1.23.2
Jinja2==3.1.6
"""
TESTS = """-c something.txt
pytest-homeassistant-custom-component==0.13.375
onnxruntime==1.32.0  # a wheel for 3.14
"""
CONSTRAINTS = """aiohttp==3.14.5
jinja2==3.1.6
urllib3>=2.0
"""


def test_home_assistants_pins_win_and_test_lines_replace_the_nodes() -> None:
    assert merged(NODE, TESTS, CONSTRAINTS) == [
        "pytest-homeassistant-custom-component==0.13.375",
        "onnxruntime==1.32.0",
        "aiohttp",
        "llama-cpp-python==0.3.36",
        "Jinja2",
    ]
