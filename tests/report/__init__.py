"""Tests of orchestrator.report."""
