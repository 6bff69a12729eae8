"""``python -m goldennoise collect-teacher --config configs/teacher/<backbone>.yaml``: NoiseRefine teacher data.

Every :class:`~goldennoise.collection.teacher_config.TeacherConfig` setting is a flag (``--help`` documents them,
``--print_config`` prints the resolved YAML); config files compose left to right and flags win (an overlay such as
``configs/teacher/shapes_perfect.yaml`` after ``shapes.yaml`` adds the score filter).
"""

from __future__ import annotations

from goldennoise.collection.teacher import collect_teacher
from goldennoise.collection.teacher_config import TeacherConfig
from goldennoise.config_parser import ConfigParser, parse_settings, settings_parser


def build_parser() -> ConfigParser:
    """The ``collect-teacher`` argument parser."""
    return settings_parser(TeacherConfig, "python -m goldennoise collect-teacher",
                           "Collect NoiseRefine teacher records: guided (CFG, or CFG + PAG) DDIM samples of stored "
                           "noises over prompts x seeds, scored and optionally filtered by a minimum score; "
                           "batched, sharded, resumable after a kill, multi-process.")


def parse_config(argv: list[str]) -> TeacherConfig:
    """Parse command-line arguments into a :class:`TeacherConfig`."""
    return parse_settings(build_parser(), TeacherConfig, argv)[0]


def collect_teacher_command(argv: list[str]) -> dict | None:
    """Entry point registered as the ``collect-teacher`` subcommand; returns the summary (rank 0)."""
    return collect_teacher(parse_config(argv))
