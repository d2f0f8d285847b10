"""A first asset graph and the job that materializes it. Replace with the team's own."""

import dagster as dg

OWNERS = ["team:__TEAM__"]


@dg.asset(group_name="__TEAM__", owners=OWNERS)
def raw_numbers() -> list[int]:
    return list(range(10))


@dg.asset(group_name="__TEAM__", owners=OWNERS)
def squared_numbers(raw_numbers: list[int]) -> list[int]:
    return [number * number for number in raw_numbers]


sample_job = dg.define_asset_job("sample_job", selection=dg.AssetSelection.groups("__TEAM__"))
