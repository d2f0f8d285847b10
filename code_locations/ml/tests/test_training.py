import json
from pathlib import Path

import dagster as dg

from ml.defs import datasets, training


def test_training_exports_onnx_and_evaluates_both_models(team_resources):
    result = dg.materialize(
        [
            datasets.iris_table,
            training.iris_model,
            training.iris_onnx_export,
            training.onnx_predictions,
            training.model_evaluation,
        ],
        resources=team_resources,
    )
    assert result.success
    report = result.output_for_node("model_evaluation")
    assert report["sklearn_accuracy"] > 0.85
    assert report["agreement"] > 0.95
    model_metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("iris_model")
    )
    assert model_metadata["wandb_artifact_type"].value == "model"
    entry = json.loads((Path(model_metadata["wandb_cache_path"].value) / "entry.json").read_text())
    assert entry["metadata"]["source_serialization_module"] == "joblib"
    assert entry["metadata"]["source_dagster_wandb_io_signed"] is True
