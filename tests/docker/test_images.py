"""The images hold what users are promised: the science stack in base, PyTorch that trains on the CPU in ml."""

from __future__ import annotations

from tests.docker.engine import docker


def run_in(image: str, *command: str) -> str:
    result = docker("run", "--rm", "--network", "none", image, *command, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_base_image_has_the_notebook_stack_and_matches_the_hub(docker_engine):
    out = run_in(
        "polartep/base",
        "python",
        "-c",
        "import xarray, dask, distributed, dask_gateway, ipywidgets, voila, papermill, h5netcdf, netCDF4, zarr;"
        "import jupyterhub, jupyterlab, os; print(jupyterhub.__version__, os.getuid(), os.environ['HOME'])",
    )
    assert out.split() == ["6.1.1", "1000", "/home/jovyan"]


def test_base_image_runs_its_example_notebook(docker_engine):
    out = run_in(
        "polartep/base",
        "papermill",
        "--no-progress-bar",
        "--log-level",
        "WARNING",
        "notebooks/xarray-dask-quickstart.ipynb",
        "/tmp/out.ipynb",
    )
    assert "Traceback" not in out


def test_ml_image_trains_a_small_model_on_the_cpu(docker_engine):
    out = run_in(
        "polartep/ml",
        "python",
        "-c",
        "import torch, xarray\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(256, 8); y = x @ torch.arange(8.0) + 1\n"
        "model = torch.nn.Linear(8, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "losses = []\n"
        "for _ in range(50):\n"
        "    opt.zero_grad(); loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y); loss.backward(); opt.step()\n"
        "    losses.append(loss.item())\n"
        "print(torch.__version__, torch.cuda.is_available(), losses[-1] < losses[0] / 10)",
    )
    version, cuda, learned = out.split()
    assert version.startswith("2.13.0") and cuda == "False" and learned == "True"
