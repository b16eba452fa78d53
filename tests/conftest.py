import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def paper3():
    from dcsched.config import load_scenario

    return load_scenario("paper3")


@pytest.fixture(scope="session")
def params64(paper3):
    from dcsched.sim.params import build_params

    return build_params(paper3, dtype=torch.float64)


@pytest.fixture(scope="session")
def exo_test64(paper3):
    from dcsched.data.exogenous import load_exogenous, split_days

    return load_exogenous(paper3, split_days(paper3, "test")[:6], dtype=torch.float64)
