"""Solvers for an AllocationProblem; one module per solver, `dispatch` chooses.

arrays        what every solver shares: variables, fixed items, company rows, overflow checks
cpsat         exact CP-SAT (deterministic)
lp            the LP relaxation in GLOP: bound and dual prices
lp_guided     large rounds: Lagrangian dual prices, rounding, repair, CP-SAT polish of a core
brute_force   exhaustive optimum of tiny problems (the tests' oracle)
dispatch      a round's solve: strategy, LP prices, quota costs
"""
