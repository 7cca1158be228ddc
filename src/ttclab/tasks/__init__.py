"""Tasks: questions with gold answers from reasoning-gym, local files or the Hugging Face hub, and
the prompt templates that turn them into chat messages or few-shot completion prompts.

Heavy dependencies (reasoning_gym, pyarrow, datasets) are imported only when questions are read.
"""

from __future__ import annotations

from ttclab.tasks.base import Question, Task
from ttclab.tasks.config import (
    FieldsConfig,
    FileTaskConfig,
    GymTaskConfig,
    HubTaskConfig,
    PromptConfig,
    TaskConfig,
    build_prompt_template,
    format_validation_error,
    load_task,
    task_config,
)
from ttclab.tasks.files import PRESETS, FileTask, last_boxed, read_records
from ttclab.tasks.gym import GymTask, gym_dataset_names
from ttclab.tasks.hub import HubTask
from ttclab.tasks.prompts import CHAT_TEMPLATES, FEWSHOT_TEMPLATES, TEMPLATE_NAMES, PromptTemplate, builtin_template

__all__ = [
    "CHAT_TEMPLATES", "FEWSHOT_TEMPLATES", "PRESETS", "TEMPLATE_NAMES",
    "FieldsConfig", "FileTask", "FileTaskConfig", "GymTask", "GymTaskConfig", "HubTask", "HubTaskConfig",
    "PromptConfig", "PromptTemplate", "Question", "Task", "TaskConfig",
    "build_prompt_template", "builtin_template", "format_validation_error", "gym_dataset_names", "last_boxed",
    "load_task", "read_records", "task_config",
]
