"""Shared numerical procedures (ODE/SDE integrators, Langevin, guidance); families call them."""
