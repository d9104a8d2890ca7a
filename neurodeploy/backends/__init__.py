"""Reference backends that run a netlist elsewhere than our simulator (Lava)."""
