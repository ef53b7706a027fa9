"""Small random Stable Diffusion / SDXL pipelines saved by diffusers, built once for every test module that
compares against them (the folders are only read; a test that changes one works on a copy)."""
from __future__ import annotations

import pytest

import sd_components


@pytest.fixture(scope="session")
def sd1(tmp_path_factory):
    return sd_components.sd1_pipeline(tmp_path_factory.mktemp("sd1"))


@pytest.fixture(scope="session")
def sd2_v(tmp_path_factory):
    return sd_components.sd2_v_pipeline(tmp_path_factory.mktemp("sd2-v"))


@pytest.fixture(scope="session")
def sd_inpaint(tmp_path_factory):
    return sd_components.sd_inpaint_pipeline(tmp_path_factory.mktemp("sd-inpaint"))


@pytest.fixture(scope="session")
def sdxl(tmp_path_factory):
    return sd_components.sdxl_pipeline(tmp_path_factory.mktemp("sdxl"))


@pytest.fixture(scope="session")
def refiner(tmp_path_factory, sdxl):
    return sd_components.sdxl_refiner_pipeline(tmp_path_factory.mktemp("sdxl-refiner"), sdxl)


@pytest.fixture(scope="session")
def sdxl_inpaint(tmp_path_factory):
    return sd_components.sdxl_inpaint_pipeline(tmp_path_factory.mktemp("sdxl-inpaint"))
