"""Config texts shared by the command-line tests."""


def barenblatt_config(cells=16, end=1.5):
    """A 2D porous-medium config (m = 2) from its exact Barenblatt profile, t from 1 to
    ``end``; the [time] table comes last, so keys can be appended to it."""
    return f"""
[grid]
bounds = [[-2, 2], [-2, 2]]
cells = [{cells}]
[[energy]]
term = "porous-medium"
m = 2
[initial]
density = "barenblatt"
[time]
start = 1.0
end = {end}
"""
