import dagster as dg
import wandb

from ml.defs import datasets

DAYS = datasets.sales_days.get_partition_keys()


def test_iris_table_is_written_as_a_wandb_table(team_resources):
    result = dg.materialize([datasets.iris_table], resources=team_resources)
    assert result.success
    table = result.output_for_node("iris_table")
    assert isinstance(table, wandb.Table) and len(table.data) == 150


def materialize_every_day(resources):
    # The integration writes one partition per run, as the guide says.
    for day in DAYS:
        assert dg.materialize(
            [datasets.daily_cake_sales], partition_key=day, resources=resources
        ).success


def test_reader_of_all_partitions_gets_every_day(team_resources):
    materialize_every_day(team_resources)
    result = dg.materialize(
        [datasets.sales_by_type, datasets.daily_cake_sales.to_source_asset()],
        resources=team_resources,
        selection=[datasets.sales_by_type],
    )
    summary = result.output_for_node("sales_by_type")
    assert summary["days"] == DAYS
    assert summary["totals"]["sponge"] == sum(datasets.sales_for(day)["sponge"] for day in DAYS)


def test_time_window_mapping_reads_the_day_and_the_one_before(team_resources):
    materialize_every_day(team_resources)
    result = dg.materialize(
        [datasets.sales_day_over_day, datasets.daily_cake_sales.to_source_asset()],
        partition_key="2026-11-05",
        resources=team_resources,
        selection=[datasets.sales_day_over_day],
    )
    change = result.output_for_node("sales_day_over_day")
    today, yesterday = datasets.sales_for("2026-11-05"), datasets.sales_for("2026-11-04")
    assert change == {cake: today[cake] - yesterday[cake] for cake in datasets.CAKE_TYPES}
