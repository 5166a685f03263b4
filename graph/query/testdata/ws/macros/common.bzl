"""Naming helpers shared by the macros."""

def out_name(name):
    return name + ".out"
