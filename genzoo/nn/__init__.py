"""Shared networks: every family builds from these, none defines its own MLP."""

from genzoo.nn.mlp import MLP, ConditionedMLP, LabelEmbedding, TimeEmbedding

__all__ = ["MLP", "ConditionedMLP", "LabelEmbedding", "TimeEmbedding"]
