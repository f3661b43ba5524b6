"""Vehicle attributes: colour without learned weights (``colour``); type, make, model and
colour heads through a user's multi-head classifier (``oko.models.multihead``). The
product module is ``oko.modules.vehicles``."""
