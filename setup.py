"""Only for the optional C scanner; everything else is in pyproject.toml.

``optional=True``: without a compiler the install still succeeds and ctguard uses the
pure-Python scanner (same answers, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ctguard.table._scan",
            ["src/ctguard/table/_scan.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
        )
    ]
)
