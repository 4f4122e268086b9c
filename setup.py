"""Pure-Python install: `pip install -e .` (add `[test]` for the test tools). No compiled extensions."""
from pathlib import Path

from setuptools import find_packages, setup


def read_requirements():
    lines = Path(__file__).with_name("requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name="sgg",
    version="0.1.0",
    description="A unified scene graph generation framework: Faster R-CNN + pluggable relation heads, "
                "one trainer, one Visual Genome evaluator",
    long_description=Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["sgg", "sgg.*"]),
    install_requires=read_requirements(),
    extras_require={"test": ["pytest>=7.0", "matplotlib>=3.5"],  # the plot tests run in CI
                    "plots": ["matplotlib>=3.5"]},
    license="MIT",
)
