"""Evaluation: metrics and protocols for honest full-ranking evaluation."""
