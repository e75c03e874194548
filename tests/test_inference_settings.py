"""The configs' ``inference`` section: NeMo's defaults, stored with the run, overridable, checked,
and turned into the search's SearchConfig."""

import json
import types

import numpy as np
import pytest

from configs import nemo_pascal3d, pascal3d_cpu, smoke, synthetic_cpu
from nemo_jax.inference import SearchConfig
from nemo_jax.inference.settings import (
    default_settings,
    run_settings,
    search_config_from_settings,
    search_fields,
)
from nemo_jax.mesh import cuboid_mesh
from nemo_jax.render import RasterSettings


def test_defaults_are_nemo_and_every_config_has_the_section():
    s = default_settings()
    assert s.steps == 300 and s.lr == 0.05 and (s.b1, s.b2) == (0.4, 0.6)
    assert (s.decay_every, s.decay_rate) == (100, 0.2) and s.num_starts == 1
    assert len(s.azimuths_deg) * len(s.elevations_deg) * len(s.thetas_deg) == 144
    assert s.subtype == "ground_truth" and s.variant == "hard"
    configs = (
        nemo_pascal3d.get_config("car"),
        pascal3d_cpu.get_config("car"),
        synthetic_cpu.get_config("car"),
        smoke.get_config(),
    )
    for config in configs:
        assert set(config.inference.keys()) == set(s.keys())
    # Every SearchConfig field (but the raster) is reachable from the section.
    fields = search_fields(s)
    config = SearchConfig(raster=RasterSettings(8, 8), **fields)
    assert config.grid_size == 144 and config.parametrization == s.parametrization


def test_run_settings_from_json_with_overrides():
    config = nemo_pascal3d.get_config("car")
    config.inference.steps = 120
    stored = json.loads(json.dumps(config.to_dict()))  # as config.json holds it: tuples -> lists
    s = run_settings(stored, {"inference.parametrization": "angles", "num_starts": 3})
    assert s.steps == 120 and s.parametrization == "angles" and s.num_starts == 3
    assert isinstance(s.azimuths_deg, tuple) and s.azimuths_deg[1] == 30.0
    # A run written before the section existed takes the defaults.
    del stored["inference"]
    assert run_settings(stored).to_dict() == default_settings().to_dict()
    # Partial sections (older runs) are filled with defaults.
    stored["inference"] = {"steps": 50}
    assert run_settings(stored).steps == 50 and run_settings(stored).lr == 0.05


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"stepz": 3}, r"overrides: unknown key\(s\) \['stepz'\]"),
        ({"parametrization": "quaternion"}, "inference.parametrization: expected one of"),
        ({"subtype": "best"}, "inference.subtype: expected one of"),
        ({"variant": "blurry"}, "inference.variant: expected one of"),
        ({"tile_budget": -1}, "inference.tile_budget"),
        ({"thetas_deg": []}, "inference.thetas_deg: the pose grid needs at least one value"),
        ({"steps": "many"}, "overrides.steps"),
    ],
)
def test_run_settings_errors_name_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        run_settings({}, overrides, where="run/config.json")


def test_stored_section_errors_name_the_file():
    with pytest.raises(ValueError, match=r"run/config.json: inference: unknown key\(s\) \['grid'\]"):
        run_settings({"inference": {"grid": 1}}, where="run/config.json")


def test_search_config_from_settings():
    """The one map from settings to the search: every SearchConfig field, the rasterizer variant and
    an explicit tile budget; 0 sizes the budget for the mesh and camera."""
    v, f = cuboid_mesh([-0.2, -0.5, -0.17], [0.2, 0.5, 0.17], 100)
    mesh = types.SimpleNamespace(vertices=v, faces=f)
    camera = (60.0, np.array([10.0, 6.0], np.float32), 5.0)
    settings = run_settings({}, {"parametrization": "camera_position", "steps": 17, "variant": "soft"})
    config = search_config_from_settings(settings, mesh, (12, 20), *camera)
    assert (config.parametrization, config.steps, config.raster.variant) == ("camera_position", 17, "soft")
    assert (config.raster.height, config.raster.width) == (12, 20) and config.raster.tile_budget > 0
    assert config.thetas_deg == (-30.0, 0.0, 30.0)
    settings.tile_budget = 123
    assert search_config_from_settings(settings, mesh, (12, 20), *camera).raster.tile_budget == 123
    settings.subtype = "all"
    with pytest.raises(ValueError, match="run/config.json: inference.subtype"):
        search_config_from_settings(settings, mesh, (12, 20), *camera, where="run/config.json")
