"""A first cut of the ML team's graph: dataset -> model -> evaluation."""

import dagster as dg
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


@dg.asset(group_name="training", owners=["team:ml"])
def iris_dataset() -> pd.DataFrame:
    return load_iris(as_frame=True).frame


@dg.asset(group_name="training", owners=["team:ml"])
def iris_model(iris_dataset: pd.DataFrame) -> LogisticRegression:
    features = iris_dataset.drop(columns="target")
    return LogisticRegression(max_iter=500).fit(features, iris_dataset["target"])


@dg.asset(group_name="training", owners=["team:ml"])
def iris_evaluation(iris_dataset: pd.DataFrame, iris_model: LogisticRegression) -> float:
    features = iris_dataset.drop(columns="target")
    _, test_x, _, test_y = train_test_split(
        features, iris_dataset["target"], test_size=0.3, random_state=0
    )
    return float(iris_model.score(test_x, test_y))


training_pipeline = dg.define_asset_job(
    "training_pipeline", selection=dg.AssetSelection.groups("training")
)
