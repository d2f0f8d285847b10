"""Train on data that ships with scikit-learn, export to ONNX, evaluate both."""

from typing import Any

import dagster as dg
import numpy as np
import onnxruntime as rt
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

OWNERS = ["team:ml"]
WANDB = "wandb_artifacts_manager"
# A concurrency pool (dagster.yaml: one slot unless set otherwise), shared by every run.
GPU_POOL = "gpu"
IRIS_TABLE = {"wandb_artifact_configuration": {"get": "Table"}}
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def split(iris: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return train_test_split(
        iris[FEATURES].to_numpy(dtype=np.float32),
        iris["target"].to_numpy(),
        test_size=0.3,
        random_state=0,
        stratify=iris["target"],
    )


@dg.asset(
    group_name="training",
    owners=OWNERS,
    kinds={"sklearn", "wandb"},
    # One training or export at a time across every run: they share the GPU node.
    pool=GPU_POOL,
    io_manager_key=WANDB,
    ins={"iris_table": dg.AssetIn(input_manager_key=WANDB, metadata=IRIS_TABLE)},
    metadata={
        "wandb_artifact_configuration": {
            "type": "model",
            "serialization_module": {"name": "joblib", "parameters": {"compress": 3}},
        }
    },
)
def iris_model(iris_table) -> RandomForestClassifier:
    """A random forest, stored with joblib (compressed) as a W&B model artifact."""
    train_x, _, train_y, _ = split(iris_table.get_dataframe())
    return RandomForestClassifier(n_estimators=50, random_state=0).fit(train_x, train_y)


@dg.multi_asset(
    group_name="training",
    pool=GPU_POOL,
    outs={
        "iris_onnx_model": dg.AssetOut(
            io_manager_key=WANDB,
            owners=OWNERS,
            kinds={"onnx", "wandb"},
            metadata={"wandb_artifact_configuration": {"type": "model"}},
        ),
        "iris_test_set": dg.AssetOut(
            io_manager_key=WANDB,
            owners=OWNERS,
            metadata={"wandb_artifact_configuration": {"type": "test_set"}},
        ),
    },
    ins={
        "iris_table": dg.AssetIn(input_manager_key=WANDB, metadata=IRIS_TABLE),
        "iris_model": dg.AssetIn(input_manager_key=WANDB),
    },
)
def iris_onnx_export(iris_table, iris_model: RandomForestClassifier):
    """The model in ONNX, for serving without scikit-learn, and the held-out test set."""
    _, test_x, _, test_y = split(iris_table.get_dataframe())
    onnx_model = convert_sklearn(
        iris_model, initial_types=[("float_input", FloatTensorType([None, len(FEATURES)]))]
    )
    return onnx_model.SerializeToString(), {"X_test": test_x, "y_test": test_y}


@dg.asset(
    group_name="training",
    owners=OWNERS,
    kinds={"onnx"},
    ins={
        "iris_onnx_model": dg.AssetIn(input_manager_key=WANDB),
        "iris_test_set": dg.AssetIn(input_manager_key=WANDB),
    },
)
def onnx_predictions(iris_onnx_model: bytes, iris_test_set: dict[str, Any]) -> np.ndarray:
    """Inference with onnxruntime from the exported bytes."""
    session = rt.InferenceSession(iris_onnx_model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    label_name = session.get_outputs()[0].name
    return session.run([label_name], {input_name: iris_test_set["X_test"]})[0]


@dg.asset(
    group_name="training",
    owners=OWNERS,
    ins={
        "iris_model": dg.AssetIn(input_manager_key=WANDB),
        "iris_test_set": dg.AssetIn(input_manager_key=WANDB),
    },
)
def model_evaluation(
    iris_model: RandomForestClassifier, iris_test_set: dict[str, Any], onnx_predictions: np.ndarray
) -> dg.MaterializeResult:
    """Accuracy of the scikit-learn model and of its ONNX export, and how often they agree."""
    expected = iris_test_set["y_test"]
    sklearn_predictions = iris_model.predict(iris_test_set["X_test"])
    report = {
        "sklearn_accuracy": round(float((sklearn_predictions == expected).mean()), 4),
        "onnx_accuracy": round(float((onnx_predictions == expected).mean()), 4),
        "agreement": round(float((onnx_predictions == sklearn_predictions).mean()), 4),
        "test_rows": len(expected),
    }
    return dg.MaterializeResult(
        value=report, metadata={**report, "report": dg.MetadataValue.json(report)}
    )


training_pipeline = dg.define_asset_job(
    "training_pipeline",
    selection=dg.AssetSelection.groups("datasets", "training"),
    description="Dataset table -> model (joblib) -> ONNX export -> inference -> evaluation.",
)
