"""The round as an optimisation model.

money     every KRW amount (hours at a level, cost, co-payment, awarded share), in integers
problem   AllocationProblem (arrays: items x options, knapsack/company/cover rows) and Solution
build     ModelData: a scored round -> AllocationProblem, and back to applications
reserve   what the first allocation holds back for refills and appeals
"""
