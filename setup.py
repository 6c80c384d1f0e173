"""Optional C accelerators of the collector's hot path (pure-Python fallbacks always ship).

Each extension is ``optional``: without a C compiler and Python headers the install goes on
and sflowlab runs its pure-Python code, which gives the same results (tests compare both).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("sflowlab.codec._walk", ["sflowlab/codec/_walk.c"], optional=True),
    Extension("sflowlab.collector._seq", ["sflowlab/collector/_seq.c"], optional=True),
    Extension("sflowlab.collector._rates", ["sflowlab/collector/_rates.c"], optional=True),
    Extension("sflowlab.collector._recv", ["sflowlab/collector/_recv.c"], optional=True),
    Extension("sflowlab.collector._metrics", ["sflowlab/collector/_metrics.c"], optional=True),
])
