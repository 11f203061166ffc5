"""Tests of orchestrator.katapult."""
