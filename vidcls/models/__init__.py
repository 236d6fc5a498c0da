"""Temporal classifiers over cached frame features. Importing this imports Keras."""

from vidcls.models.attention_lstm import AttentionLSTMClassifier
from vidcls.models.attention_pooling import AttentionPooling
from vidcls.models.blocks import NORMALIZATION_LAYER, adapt_normalization
from vidcls.models.lstm import LSTM
from vidcls.models.mean_pool import MeanPoolClassifier
from vidcls.models.optimizer import FusedAdamW
from vidcls.models.outputs import INFERENCE_BATCH_SIZE, outputs_by_target, predict
from vidcls.models.recurrent import BiLSTMClassifier, GRUClassifier
from vidcls.models.registry import MODELS, build_model, finalize_layers, load_model, model_class, rebuild_for_export
from vidcls.models.summary import describe_model
from vidcls.models.transfer import check_source_run, transfer_weights
from vidcls.models.transformer import TransformerClassifier

__all__ = [
    "AttentionLSTMClassifier", "AttentionPooling", "BiLSTMClassifier", "FusedAdamW", "GRUClassifier", "TransformerClassifier",
    "INFERENCE_BATCH_SIZE", "MODELS", "MeanPoolClassifier", "NORMALIZATION_LAYER", "LSTM", "adapt_normalization", "build_model",
    "check_source_run", "describe_model", "finalize_layers", "load_model", "model_class", "outputs_by_target", "predict",
    "rebuild_for_export", "transfer_weights"
]
