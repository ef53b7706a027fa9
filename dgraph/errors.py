"""One family of exceptions for everything a user can cause.

Every message says what went wrong, where (file, line, key), and what to do about it.
The CLI prints these without a traceback; anything else escaping is a bug in dgraph.
"""
from __future__ import annotations


class DgraphError(Exception):
    """Base class of every error a user can cause (bad file, missing weights, bad argument)."""

    exit_code = 1


class ConfigError(DgraphError):
    """A config file (config.json, scheduler_config.json, model_index.json) is missing or wrong."""


class WeightsError(DgraphError):
    """Weights are missing, in a refused format, or do not fit the model."""


class HubError(DgraphError):
    """A file could not be had from the Hugging Face Hub or its cache."""


class SourceError(DgraphError):
    """A weights or workflow source string (folder, hf://, pkg://) is malformed or points nowhere."""


class InputError(DgraphError):
    """A value given for a graph input (a flag, --set, a keyword of execute) is unknown or does not fit."""

    exit_code = 2


class Cancelled(DgraphError):
    """Execution was cancelled (Ctrl-C or a cancel token) between two steps."""

    exit_code = 130
