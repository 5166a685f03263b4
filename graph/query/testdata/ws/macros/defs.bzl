"""A selection macro; the same file loads in Bazel (genrule) and hepbuild (task)."""

load(":common.bzl", "out_name")

def selection(name, src, tags = []):
    rule = native.task if hasattr(native, "task") else native.genrule
    rule(
        name = name,
        srcs = [src],
        outs = [out_name(name)],
        cmd = "$(location //tools:selector) $< > $@",
        tools = ["//tools:selector"],
        tags = tags + ["selection"],
    )
