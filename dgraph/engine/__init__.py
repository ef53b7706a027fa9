"""The workflow-graph engine: file format, registry, validation, planning and execution.

It never imports the node catalogue: node types arrive through the `dgraph.nodes` entry-point group.
"""
