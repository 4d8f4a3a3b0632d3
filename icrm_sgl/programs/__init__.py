"""Prompt templates and the sglang judging programs.

Public entry points for your own sglang code: ``program_config`` (the settings ``ICRM``
would use), ``build_program`` (a ready ``@sgl.function``), ``write_judgement`` (append a
judgement inside your own program), ``read_verdict`` (the validated verdict of a state);
a config's ``judge.example_fields(example)`` gives an example's program arguments.
"""
