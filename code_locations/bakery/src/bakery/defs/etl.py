"""The op/graph/job ETL example from the team notes: extract -> transform -> load."""

from typing import Any

import dagster as dg


@dg.op
def extract_data() -> dict[str, list[int]]:
    return {"data": [1, 2, 3, 4, 5]}


@dg.op
def transform_data(data: dict[str, list[int]]) -> dict[str, list[int]]:
    return {"transformed_data": [value * 2 for value in data["data"]]}


@dg.op
def load_data(context: dg.OpExecutionContext, transformed: dict[str, list[int]]) -> dict[str, Any]:
    total = sum(transformed["transformed_data"])
    context.log.info(f"loaded {len(transformed['transformed_data'])} values, total {total}")
    return {"rows": len(transformed["transformed_data"]), "total": total}


@dg.graph
def etl_process() -> dict[str, Any]:
    return load_data(transform_data(extract_data()))


@dg.job(description="The op-based ETL example: extract, transform, load.")
def recipe_etl_job() -> None:
    etl_process()
