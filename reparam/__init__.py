"""Reparameterization: turn a training-form model into its deploy form with the same outputs.

(Being built: see the Reparameterization issue. ``reparameterize(model)`` returns a new module.)
"""
